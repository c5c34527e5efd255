"""Image classification metrics with bootstrap confidence intervals, in numpy.

Three kinds of task, as `classification_report` takes them:

  binary      labels (N,) in {0, 1}; probabilities (N,) of the positive class
              (or (N, 2) softmax, column 1 used).
  multiclass  labels (N,) in [0, K); probabilities (N, K) (softmax). Decisions are
              the argmax: per-class sensitivity is that class's recall,
              specificity the share of other cases not called that class.
  multilabel  labels (N, K) in {0, 1}; probabilities (N, K) (a sigmoid per
              finding), each finding decided at its own threshold.

ROC-AUC and AUPRC (average precision) are per class (one-vs-rest) with their
macro mean over the classes present. ECE uses 15 equal-width bins (i/15,
(i+1)/15], the first holding 0: per class on that class's probability, and for
the summary top-label (confidence = max probability, hit = argmax correct) for
multiclass, the mean over findings for multilabel. Confidence intervals are
95% percentile bootstrap intervals over cases resampled with replacement;
resamples in which a class is absent or universal (so its AUC is undefined)
are skipped, and the report says how many were used.
"""

from __future__ import annotations

import warnings

import numpy as np

from medjax.engine.errors import InputError
from medjax.metrics import ranking

KINDS = ("binary", "multiclass", "multilabel")
RULES = ("youden", "f1")
N_BINS = 15
# Per-class metrics, and the summary metrics of every kind (multilabel adds
# subset_accuracy, the share of cases with every finding right).
CLASS_METRICS = ("roc_auc", "auprc", "sensitivity", "specificity", "accuracy",
                 "balanced_accuracy", "ece")
SUMMARY_METRICS = ("roc_auc_macro", "auprc_macro", "sensitivity_macro",
                   "specificity_macro", "accuracy", "balanced_accuracy", "ece")


def calibration_bins(y, prob, n_bins: int = N_BINS):
  """(bin index per case, cases, positives, summed probability) per equal-width bin."""
  y, prob = np.asarray(y, np.float64).ravel(), np.asarray(prob, np.float64).ravel()
  index = np.clip(np.ceil(prob * n_bins).astype(int) - 1, 0, n_bins - 1)
  return (index, np.bincount(index, minlength=n_bins),
          np.bincount(index, weights=y, minlength=n_bins),
          np.bincount(index, weights=prob, minlength=n_bins))


def expected_calibration_error(y, prob, n_bins: int = N_BINS) -> float:
  """sum over bins of |B|/N * |mean(y in B) - mean(prob in B)|; y in {0, 1}."""
  _, count, positives, summed = calibration_bins(y, prob, n_bins)
  return float(np.abs(positives - summed).sum() / max(count.sum(), 1))


def _rates(y, predicted):
  """(sensitivity, specificity, accuracy) of boolean decisions; NaN for an absent class."""
  y, predicted = np.asarray(y).astype(bool), np.asarray(predicted).astype(bool)
  positives, negatives = y.sum(), (~y).sum()
  sensitivity = (y & predicted).sum() / positives if positives else np.nan
  specificity = (~y & ~predicted).sum() / negatives if negatives else np.nan
  return float(sensitivity), float(specificity), float(np.mean(y == predicted))


def _class_metrics(y, prob, predicted) -> dict[str, float]:
  sensitivity, specificity, accuracy = _rates(y, predicted)
  return dict(roc_auc=ranking.roc_auc(y, prob), auprc=ranking.average_precision(y, prob),
              sensitivity=sensitivity, specificity=specificity, accuracy=accuracy,
              balanced_accuracy=(sensitivity + specificity) / 2,
              ece=expected_calibration_error(y, prob))


def binary_metrics(y_true, prob, threshold: float = 0.5) -> dict[str, float]:
  """ROC-AUC, AUPRC, ECE, and sensitivity, specificity, accuracy and balanced
  accuracy of calling `prob >= threshold` positive."""
  y, prob = np.asarray(y_true).ravel(), np.asarray(prob, np.float64).ravel()
  out = _class_metrics(y, prob, prob >= threshold)
  return {**out, "threshold": float(threshold), "n_positive": int((y == 1).sum()),
          "n_negative": int((y == 0).sum())}


def choose_threshold(y_true, prob, rule: str = "youden") -> float:
  """The probability t (calling `prob >= t` positive) that maximises, on these
  (validation) cases, Youden's J = sensitivity + specificity - 1 ('youden') or
  F1 ('f1'); among ties the highest t."""
  if rule not in RULES:
    raise InputError(f"threshold rule must be one of {RULES}, got {rule!r}")
  y = np.asarray(y_true).ravel().astype(bool)
  prob = np.asarray(prob, np.float64).ravel()
  if y.all() or not y.any():
    raise ValueError("choose_threshold needs positive and negative cases")
  order = np.argsort(-prob, kind="mergesort")
  scores, hits = prob[order], y[order]
  last_of_tie = np.r_[scores[1:] != scores[:-1], True]
  tp = np.cumsum(hits)[last_of_tie]
  fp = np.cumsum(~hits)[last_of_tie]
  if rule == "youden":
    objective = tp / y.sum() - fp / (~y).sum()
  else:
    objective = 2 * tp / (tp + fp + y.sum())
  return float(scores[last_of_tie][np.argmax(objective)])


def as_matrices(y_true, probs, kind: str, mask=None):
  """(indicator labels (N, K) bool, probabilities (N, K), observed (N, K) bool) of any
  kind (binary: K = 1). `mask` (N,) drops cases; for multilabel (N, K) marks the
  labels known (0: missing, left out of that finding's metrics)."""
  if kind not in KINDS:
    raise InputError(f"kind must be one of {KINDS}, got {kind!r}")
  y, p = np.asarray(y_true), np.asarray(probs, np.float64)
  if kind == "binary":
    p = p[:, 1] if p.ndim == 2 and p.shape[1] == 2 else p
    y, p = y.reshape(-1, 1), p.reshape(-1, 1)
  elif kind == "multiclass":
    if p.ndim != 2 or y.shape != p.shape[:1]:
      raise ValueError(f"multiclass wants labels (N,) and probs (N, K), got "
                       f"{y.shape} and {p.shape}")
    y = np.eye(p.shape[1])[y.astype(int)]
  if y.shape != p.shape:
    raise ValueError(f"labels {y.shape} and probabilities {p.shape} differ in shape")
  y = y.astype(bool)
  if mask is None:
    return y, p, np.ones_like(y)
  mask = np.asarray(mask) > 0
  if kind == "multilabel" and mask.shape == y.shape:
    keep = mask.any(1)
    return y[keep], p[keep], mask[keep]
  if mask.shape != y.shape[:1]:
    raise ValueError(f"mask {mask.shape} fits neither cases {y.shape[:1]} nor labels "
                     f"{y.shape}")
  return y[mask], p[mask], np.ones_like(y[mask])


def _thresholds(thresholds, kind: str, k: int):
  if kind == "multiclass":
    if thresholds is not None:
      raise ValueError("multiclass decisions are the argmax; pass thresholds=None")
    return None
  if thresholds is None:
    return [0.5] * k
  out = np.broadcast_to(np.asarray(thresholds, np.float64).ravel(), (k,))
  return [float(t) for t in out]


def choose_thresholds(y_true, probs, kind: str = "binary", rule: str = "youden",
                      mask=None):
  """Per-class `choose_threshold` on validation cases (None for multiclass); a
  finding with only one class among its known labels keeps 0.5."""
  y, p, w = as_matrices(y_true, probs, kind, mask)
  if kind == "multiclass":
    return None
  out = []
  for k in range(y.shape[1]):
    labels, scores = y[w[:, k], k], p[w[:, k], k]
    out.append(choose_threshold(labels, scores, rule) if 0 < labels.sum() < len(labels)
               else 0.5)
  return out


def _nanmean(values) -> float:
  values = np.asarray(values, np.float64)
  return float(values[np.isfinite(values)].mean()) if np.isfinite(values).any() else np.nan


def _metrics(y, p, w, kind: str, thresholds):
  """(summary {name: value}, per-class {metric: (K,) values}) of one sample of cases;
  `w` (N, K) marks the known labels."""
  if kind == "multiclass":
    decided = p.argmax(1)
    predicted = [decided == k for k in range(p.shape[1])]
  else:
    predicted = [p[:, k] >= t for k, t in enumerate(thresholds)]
  rows = [_class_metrics(y[w[:, k], k], p[w[:, k], k], predicted[k][w[:, k]])
          for k in range(p.shape[1])]
  per_class = {m: np.array([row[m] for row in rows]) for m in CLASS_METRICS}
  summary = {f"{m}_macro": _nanmean(per_class[m])
             for m in ("roc_auc", "auprc", "sensitivity", "specificity")}
  if kind == "multiclass":
    hit = decided == y.argmax(1)
    summary.update(accuracy=float(hit.mean()),
                   balanced_accuracy=_nanmean(per_class["sensitivity"]),
                   ece=expected_calibration_error(hit, p.max(1)))
  else:
    summary.update({m: _nanmean(per_class[m])
                    for m in ("accuracy", "balanced_accuracy", "ece")})
  if kind == "multilabel":
    right = (np.stack(predicted, 1) == y) | ~w
    summary["subset_accuracy"] = float(np.all(right, 1).mean())
  return summary, per_class


def _bootstrap(y, p, w, kind, thresholds, n: int, seed: int):
  """Summary and per-class metrics of each usable resample."""
  rng = np.random.default_rng(seed)
  summaries, per_classes = [], []
  for _ in range(n):
    index = rng.integers(0, len(y), len(y))
    positives = (y[index] & w[index]).sum(0)
    if np.any(positives == 0) or np.any(positives == w[index].sum(0)):
      continue  # some class absent (or universal): its AUC is undefined
    summary, per_class = _metrics(y[index], p[index], w[index], kind, thresholds)
    summaries.append(summary)
    per_classes.append(per_class)
  return summaries, per_classes


def _interval(values, level: float):
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)]
  if values.size == 0:
    return [float("nan"), float("nan")]
  tail = 100 * (1 - level) / 2
  return [float(v) for v in np.percentile(values, [tail, 100 - tail])]


def resolve_class_names(class_names, kind: str, k: int) -> list[str]:
  """One name per scored class (binary: the positive class; default class_<i>)."""
  if class_names is None:
    return ["positive"] if kind == "binary" else [f"class_{i}" for i in range(k)]
  names = list(class_names)
  if kind == "binary" and len(names) == 2:
    names = names[1:]  # (negative, positive): the positive class is scored
  if len(names) != k:
    raise ValueError(f"{len(names)} class names for {k} classes")
  return names


def classification_report(y_true, probs, kind: str = "binary", thresholds=None,
                          n_bootstrap: int = 1000, seed: int = 0, class_names=None,
                          level: float = 0.95, mask=None) -> dict:
  """Summary and per-class metrics with bootstrap CIs (see the module docstring).

  thresholds: binary / multilabel decision thresholds (a float or one per
  finding; default 0.5), e.g. from `choose_thresholds` on validation cases;
  None for multiclass. mask: see `as_matrices` (missing findings).

  Returns {kind, n_cases, class_names, thresholds, summary: {metric: value},
  per_class: {name: {metric: value, n_positive, n_known, threshold}},
  ci: {summary: {metric: [low, high]}, per_class: {name: {metric: [low, high]}}},
  bootstrap: {n_requested, n_used, level, seed}}; ci is empty when no resample
  was used (or n_bootstrap=0).
  """
  y, p, w = as_matrices(y_true, probs, kind, mask)
  k = p.shape[1]
  thresholds = _thresholds(thresholds, kind, k)
  names = resolve_class_names(class_names, kind, k)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    summary, per_class = _metrics(y, p, w, kind, thresholds)
    summaries, per_classes = _bootstrap(y, p, w, kind, thresholds, n_bootstrap, seed)
  classes = {}
  for i, name in enumerate(names):
    classes[name] = {m: float(per_class[m][i]) for m in CLASS_METRICS}
    classes[name]["n_positive"] = int((y[:, i] & w[:, i]).sum())
    classes[name]["n_known"] = int(w[:, i].sum())
    classes[name]["threshold"] = None if thresholds is None else thresholds[i]
  ci = {"summary": {}, "per_class": {}}
  if summaries:
    ci["summary"] = {m: _interval([s[m] for s in summaries], level) for m in summary}
    ci["per_class"] = {name: {m: _interval([pc[m][i] for pc in per_classes], level)
                              for m in CLASS_METRICS} for i, name in enumerate(names)}
  return dict(kind=kind, n_cases=int(len(y)), class_names=names, thresholds=thresholds,
              summary=summary, per_class=classes, ci=ci,
              bootstrap=dict(n_requested=int(n_bootstrap), n_used=len(summaries),
                             level=level, seed=seed))


def flatten(report: dict) -> dict[str, float]:
  """Scalars of a report for metric files: `roc_auc_macro`, `roc_auc_macro_ci_low`,
  `roc_auc_macro_ci_high`, per class `roc_auc/<name>` (and `_ci_low/_ci_high`)."""
  out = dict(report["summary"])
  for metric, (low, high) in report["ci"]["summary"].items():
    out[f"{metric}_ci_low"], out[f"{metric}_ci_high"] = low, high
  for name, values in report["per_class"].items():
    out.update({f"{m}/{name}": values[m] for m in CLASS_METRICS})
    for m, (low, high) in report["ci"]["per_class"].get(name, {}).items():
      out[f"{m}_ci_low/{name}"], out[f"{m}_ci_high/{name}"] = low, high
  return out
