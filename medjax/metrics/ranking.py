"""Threshold-free binary classification metrics in numpy: ROC-AUC, PR-AUC, Brier.

Shared by every task (pixel AUC in segmentation, mortality AUROC in EHR, per-task
AUC in molecules). Each takes `labels` in {0, 1}, real-valued `scores` and an
optional `weights` array (0 drops an example, e.g. padding or a missing label).
"""

from __future__ import annotations

import numpy as np


def _prepare(labels, scores, weights):
  labels = np.asarray(labels).reshape(-1)
  scores = np.asarray(scores, dtype=np.float64).reshape(-1)
  if labels.shape != scores.shape:
    raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in size")
  if weights is None:
    weights = np.ones_like(scores)
  weights = np.asarray(weights, dtype=np.float64).reshape(-1)
  keep = weights > 0
  return labels[keep].astype(bool), scores[keep], weights[keep]


def _curve(labels, scores, weights):
  """Cumulative true/false positive weight at each distinct score, high to low."""
  order = np.argsort(-scores, kind="mergesort")
  scores, labels, weights = scores[order], labels[order], weights[order]
  last_of_tie = np.r_[np.diff(scores) != 0, True]
  tps = np.cumsum(weights * labels)[last_of_tie]
  fps = np.cumsum(weights * ~labels)[last_of_tie]
  return tps, fps


def roc_auc(labels, scores, weights=None) -> float:
  """Area under the ROC curve (ties count half); NaN when a class is absent."""
  labels, scores, weights = _prepare(labels, scores, weights)
  tps, fps = _curve(labels, scores, weights)
  if tps.size == 0 or tps[-1] == 0 or fps[-1] == 0:
    return float("nan")
  tpr = np.r_[0.0, tps / tps[-1]]
  fpr = np.r_[0.0, fps / fps[-1]]
  return float(np.trapezoid(tpr, fpr))


def roc_curve(labels, scores, weights=None):
  """(false positive rate, true positive rate) at every distinct threshold."""
  labels, scores, weights = _prepare(labels, scores, weights)
  tps, fps = _curve(labels, scores, weights)
  return np.r_[0.0, fps / max(fps[-1], 1e-12)], np.r_[0.0, tps / max(tps[-1], 1e-12)]


def average_precision(labels, scores, weights=None) -> float:
  """PR-AUC as average precision (step-wise, as scikit-learn); NaN without positives."""
  labels, scores, weights = _prepare(labels, scores, weights)
  tps, fps = _curve(labels, scores, weights)
  if tps.size == 0 or tps[-1] == 0:
    return float("nan")
  precision = tps / (tps + fps)
  recall = tps / tps[-1]
  return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def brier_score(labels, probabilities, weights=None) -> float:
  """Mean squared error between predicted probabilities and {0, 1} labels."""
  labels, probabilities, weights = _prepare(labels, probabilities, weights)
  return float(np.sum(weights * (probabilities - labels) ** 2) / np.sum(weights))
