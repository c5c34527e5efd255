"""Molecule metrics on top of `medjax.metrics.ranking`; NaN targets are missing labels.

Multi-task results come per task (`rmse/<task>`, `roc_auc/<task>`) and averaged
(`rmse`, `roc_auc`): AUCs over the tasks whose labels hold both classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medjax.metrics import ranking


def _per_task(names, values: dict[str, list[float]]) -> dict[str, float]:
  out = {}
  for metric, per_task in values.items():
    finite = [v for v in per_task if np.isfinite(v)]
    out[metric] = float(np.mean(finite)) if finite else float("nan")
    if len(names) > 1:
      out.update({f"{metric}/{n}": float(v) for n, v in zip(names, per_task)})
  return out


def regression(targets: np.ndarray, predictions: np.ndarray,
               names: Sequence[str]) -> dict[str, float]:
  """RMSE, MAE and R^2 per task (targets, predictions: [molecules, tasks])."""
  values = {"rmse": [], "mae": [], "r2": []}
  for t in range(targets.shape[1]):
    keep = ~np.isnan(targets[:, t])
    y, p = targets[keep, t], predictions[keep, t]
    if y.size == 0:
      for v in values.values():
        v.append(np.nan)
      continue
    err = p - y
    total = np.sum((y - y.mean()) ** 2)
    values["rmse"].append(float(np.sqrt(np.mean(err ** 2))))
    values["mae"].append(float(np.mean(np.abs(err))))
    values["r2"].append(float(1 - np.sum(err ** 2) / total) if total > 0 else np.nan)
  return _per_task(names, values)


def binary(targets: np.ndarray, scores: np.ndarray, names: Sequence[str]) -> dict[str, float]:
  """ROC-AUC and PR-AUC (average precision) per task; NaN for one-class tasks."""
  values = {"roc_auc": [], "pr_auc": []}
  for t in range(targets.shape[1]):
    keep = ~np.isnan(targets[:, t])
    y, s = targets[keep, t], scores[keep, t]
    both = y.size > 0 and 0 < y.sum() < y.size
    values["roc_auc"].append(ranking.roc_auc(y, s) if both else np.nan)
    values["pr_auc"].append(ranking.average_precision(y, s) if both else np.nan)
  out = _per_task(names, values)
  out["tasks_scored"] = float(np.sum(np.isfinite(values["roc_auc"])))
  return out


def multiclass(targets: np.ndarray, probabilities: np.ndarray,
               names: Sequence[str]) -> dict[str, float]:
  """Accuracy, cross-entropy and macro one-vs-rest ROC-AUC (probabilities [M, T, C])."""
  values = {"accuracy": [], "cross_entropy": [], "roc_auc": []}
  for t in range(targets.shape[1]):
    keep = ~np.isnan(targets[:, t])
    y, p = targets[keep, t].astype(np.int64), probabilities[keep, t]
    if y.size == 0:
      for v in values.values():
        v.append(np.nan)
      continue
    values["accuracy"].append(float(np.mean(p.argmax(-1) == y)))
    values["cross_entropy"].append(float(-np.mean(np.log(np.maximum(p[np.arange(y.size), y],
                                                                       1e-12)))))
    aucs = [ranking.roc_auc(y == c, p[:, c]) for c in range(p.shape[1])]
    aucs = [a for a in aucs if np.isfinite(a)]
    values["roc_auc"].append(float(np.mean(aucs)) if aucs else np.nan)
  return _per_task(names, values)


def summarize(runs: Sequence[dict[str, float]]) -> dict[str, tuple[float, float]]:
  """Mean and sample sd (ddof=1; 0 for one run) of each metric over repeated runs."""
  keys = sorted(set().union(*runs))
  out = {}
  for k in keys:
    v = np.array([r.get(k, np.nan) for r in runs], np.float64)
    v = v[np.isfinite(v)]
    if v.size:
      out[k] = (float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0)
  return out
