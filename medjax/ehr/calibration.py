"""Calibrated mortality risk: temperature scaling fitted on the validation split.

    risk = sigmoid((logit - offset) / T)

T > 0 is one scalar fitted by minimising the validation negative log-likelihood (Guo et
al. 2017). `offset` undoes the known prior shift of a class-weighted (or oversampled)
loss: weighted cross-entropy with weight w on positives is minimised by the true logit
+ log w, so the offset is log w, not fitted; it is used only when it lowers the
validation NLL. The identity (offset 0, T 1) is always a candidate, so the validation
NLL never increases; neither term changes the ranking (AUROC, AUPRC).

The validation evaluator refits at every evaluation (`Calibrator.fit`), on the
checkpoint being evaluated; the test evaluator and the report, which run after it on
the same (selected) checkpoint, apply that fit. The report stores it as
`<workdir>/calibration.json`, which evaluation on another set directory reads back.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np
from scipy import optimize

CALIBRATION_FILE = "calibration.json"
_LOG_INVERSE_T = (math.log(1e-3), math.log(1e3))  # T searched in [1e-3, 1e3]


def nll(labels, logits) -> float:
  """Mean binary cross-entropy of sigmoid(logits), computed stably from the logits."""
  z, y = np.asarray(logits, np.float64), np.asarray(labels, np.float64)
  return float(np.mean(y * np.logaddexp(0, -z) + (1 - y) * np.logaddexp(0, z)))


def fit_temperature(labels, logits) -> tuple[float, float]:
  """(T, NLL at T) minimising the NLL of sigmoid(logits / T); bounded Brent on log(1/T)."""
  z = np.asarray(logits, np.float64)
  result = optimize.minimize_scalar(lambda u: nll(labels, z * math.exp(u)),
                                    bounds=_LOG_INVERSE_T, method="bounded",
                                    options={"xatol": 1e-9})
  return float(math.exp(-result.x)), float(result.fun)


@dataclasses.dataclass
class Calibration:
  """risk = sigmoid((logit - offset) / temperature); the identity by default."""
  temperature: float = 1.0
  offset: float = 0.0
  fitted_on: str = ""  # the split it was fitted on ("": not fitted)
  count: int = 0
  nll_before: float = float("nan")  # of the raw logits, on `fitted_on`
  nll_after: float = float("nan")

  def logits(self, logits) -> np.ndarray:
    return (np.asarray(logits, np.float64) - self.offset) / self.temperature

  def probabilities(self, logits) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-self.logits(logits)))

  def to_dict(self) -> dict:
    return {"method": "temperature", **dataclasses.asdict(self)}

  @classmethod
  def from_dict(cls, d: dict) -> "Calibration":
    return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


def fit(labels, logits, offsets=(0.0,), split: str = "val") -> Calibration:
  """The best of the identity and a fitted T for each candidate offset, by NLL.

  A split without both outcomes cannot fix T (its NLL falls as T -> 0): identity.
  """
  labels, logits = np.asarray(labels), np.asarray(logits, np.float64)
  if len(np.unique(labels)) < 2:
    return Calibration()
  before = nll(labels, logits)
  best = Calibration(fitted_on=split, count=len(labels), nll_before=before, nll_after=before)
  for offset in dict.fromkeys(float(o) for o in offsets):
    temperature, after = fit_temperature(labels, logits - offset)
    if after < best.nll_after:
      best = dataclasses.replace(best, temperature=temperature, offset=offset,
                                 nll_after=after)
  return best


def prior_offset(imbalance: str, positive_weight: float) -> float:
  """log of the effective positive-class weight of the training loss (0 when unweighted)."""
  return math.log(positive_weight) if imbalance != "none" and positive_weight > 0 else 0.0


class Calibrator:
  """The task's current calibration: refitted by the validation evaluator, applied by
  the other evaluators and the report (see the module docstring)."""

  def __init__(self, offsets=(0.0,), current: Calibration | None = None):
    self.offsets = tuple(offsets)
    self.current = current or Calibration()

  def fit(self, labels, logits, split: str) -> Calibration:
    self.current = fit(labels, logits, self.offsets, split)
    return self.current


def load(workdir: str) -> Calibration | None:
  """`<workdir>/calibration.json`, or None."""
  path = os.path.join(workdir, CALIBRATION_FILE) if workdir else ""
  if not path or not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return Calibration.from_dict(json.load(f))


def save(calibration: Calibration, workdir: str) -> str:
  path = os.path.join(workdir, CALIBRATION_FILE)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(calibration.to_dict(), f, indent=1)
  return path
