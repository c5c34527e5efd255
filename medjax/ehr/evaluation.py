"""In-hospital mortality evaluation: AUROC, AUPRC, Brier, log loss and calibration.

`MortalityEvaluator` runs a prediction function over a split in full-size batches (the
last one padded, `_mask` 0), so every stay counts exactly once. Its metrics are of the
calibrated risk (medjax.ehr.calibration: the validation evaluator fits the temperature,
the others apply it); `*_uncalibrated` are those of sigmoid(logit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from medjax.ehr import calibration as calibration_lib
from medjax.ehr.examples import Examples, padded_batch, split_multiple
from medjax.engine.task import Evaluator
from medjax.metrics import ranking


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def log_loss(labels, probabilities, eps: float = 1e-7) -> float:
  p = np.clip(np.asarray(probabilities, np.float64), eps, 1 - eps)
  y = np.asarray(labels, np.float64)
  return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration_bins(labels, probabilities, num_bins: int = 10):
  """Equal-width bins: (mean predicted, observed rate, count) per non-empty bin."""
  p, y = np.asarray(probabilities, np.float64), np.asarray(labels, np.float64)
  which = np.minimum((p * num_bins).astype(int), num_bins - 1)
  count = np.bincount(which, minlength=num_bins)
  keep = count > 0
  mean_p = np.bincount(which, p, num_bins)[keep] / count[keep]
  rate = np.bincount(which, y, num_bins)[keep] / count[keep]
  return mean_p, rate, count[keep]


def expected_calibration_error(labels, probabilities, num_bins: int = 10) -> float:
  mean_p, rate, count = calibration_bins(labels, probabilities, num_bins)
  return float(np.sum(count * np.abs(mean_p - rate)) / max(np.sum(count), 1))


def mortality_metrics(labels, probabilities) -> dict[str, float]:
  return {
      "auroc": ranking.roc_auc(labels, probabilities),
      "auprc": ranking.average_precision(labels, probabilities),
      "brier": ranking.brier_score(labels, probabilities),
      "log_loss": log_loss(labels, probabilities),
      "ece": expected_calibration_error(labels, probabilities),
      "prevalence": float(np.mean(labels)),
      "count": float(len(labels)),
  }


def batches(examples: Examples, indices: Sequence[int], batch_size: int,
            pad_multiple: int = 1) -> Iterator[dict]:
  """Full-size batches over `indices` in order; the last one padded with `_mask` 0."""
  for start in range(0, len(indices), batch_size):
    items = [examples[i] for i in indices[start:start + batch_size]]
    yield padded_batch(items, batch_size, pad_multiple)


class MortalityEvaluator(Evaluator):
  """Yields mortality metrics of one split. Sequence batches are all padded to the
  split's longest sequence, so each split compiles the predict function once. With
  `fit_calibration`, each run first refits `calibrator` on this split."""

  def __init__(self, name: str, examples: Examples, indices, batch_size: int,
               pad_multiple: int = 1, calibrator: calibration_lib.Calibrator | None = None,
               fit_calibration: bool = False):
    self.name = name
    self.final_only = name == "test"  # the test split: once, after training
    self.examples = examples
    self.indices = np.asarray(indices)
    self.batch_size = batch_size
    self.pad_multiple = split_multiple(examples, self.indices, pad_multiple)
    self.calibrator = calibrator or calibration_lib.Calibrator()
    self.fit_calibration = fit_calibration

  def predict_logits(self, predict_fn: Callable) -> tuple[np.ndarray, np.ndarray]:
    """(labels, logits) of the split's examples, in `indices` order."""
    labels, logits = [], []
    for batch in batches(self.examples, self.indices, self.batch_size, self.pad_multiple):
      keep = batch["_mask"] > 0
      labels.append(batch["label"][keep])
      logits.append(np.asarray(predict_fn(batch)["logits"]).reshape(-1)[keep])
    return np.concatenate(labels), np.concatenate(logits).astype(np.float64)

  def predict(self, predict_fn: Callable) -> tuple[np.ndarray, np.ndarray]:
    """(labels, calibrated probabilities) of the split's examples, in `indices` order."""
    labels, logits = self.predict_logits(predict_fn)
    return labels, self.calibrator.current.probabilities(logits)

  def run(self, predict_fn: Callable) -> Iterator[tuple[str, float]]:
    labels, logits = self.predict_logits(predict_fn)
    if self.fit_calibration:
      self.calibrator.fit(labels, logits, self.name)
    calibration = self.calibrator.current
    yield from mortality_metrics(labels, calibration.probabilities(logits)).items()
    raw = mortality_metrics(labels, sigmoid(logits))
    for name in ("brier", "log_loss", "ece"):
      yield f"{name}_uncalibrated", raw[name]
    yield "temperature", calibration.temperature
