"""Synthetic ICU stays: irregularly sampled vital signs with deterioration patterns.

The embedded default dataset for quick runs and smoke tests (no download). Each stay has
48 hours of six series; patients who die (`label` 1, prevalence `positive_rate`) deteriorate
from a random onset: heart rate, respiratory rate and lactate rise, blood pressure and
oxygen saturation fall, and they are measured more often once sick (informative
missingness, as on a real ward). A share of survivors has a transient episode that
recovers, so the task is not trivially separable. Static descriptors follow PhysioNet's.
"""

from __future__ import annotations

import numpy as np

from medjax.ehr.data import IcuData
from medjax.ehr.physionet import STATIC

VARIABLES = ("HR", "SysABP", "RespRate", "Temp", "SaO2", "Lactate")
_BASE = np.array([80.0, 120.0, 16.0, 37.0, 97.0, 1.2])
_BASE_SD = np.array([10.0, 15.0, 3.0, 0.4, 1.5, 0.3])
_SHIFT = np.array([30.0, -35.0, 10.0, 1.0, -6.0, 3.0])  # full deterioration
_NOISE = np.array([5.0, 8.0, 2.0, 0.3, 1.0, 0.3])
_PERIOD = np.array([1.0, 1.0, 1.0, 4.0, 1.0, 12.0])  # mean hours between measurements


def _trajectory(rng, label: int, t: np.ndarray) -> np.ndarray:
  """Deterioration level in [0, ~1.5] at times `t` (hours)."""
  if label:
    onset, severity = rng.uniform(4.0, 44.0), rng.uniform(0.4, 1.5)
    return severity * np.clip((t - onset) / 12.0, 0.0, 1.0)
  if rng.uniform() < 0.3:  # transient episode, recovers
    centre, severity = rng.uniform(0.0, 48.0), rng.uniform(0.3, 1.0)
    return severity * np.exp(-(((t - centre) / 5.0) ** 2))
  return np.zeros_like(t)


def _sample_times(rng, period: float, hours: float) -> np.ndarray:
  """Candidate times of a Poisson process at the highest rate (3 / period), minutes."""
  n = rng.poisson(3.0 * hours / period)
  return np.unique(np.round(rng.uniform(0.0, hours, n) * 60.0) / 60.0)


def _stay(rng, label: int, hours: float):
  """Events of one stay; thinning keeps a candidate time with rate (1 + 2 level) / 3,
  so sicker patients are measured up to 3x more often."""
  base = _BASE + _BASE_SD * rng.normal(size=len(VARIABLES))
  base[5] = abs(base[5])
  traj_seed = int(rng.integers(1 << 31))  # fixes this stay's onset and severity
  times, var, values = [], [], []
  for d in range(len(VARIABLES)):
    td = _sample_times(rng, _PERIOD[d], hours)
    level = _trajectory(np.random.default_rng(traj_seed), label, td)
    keep = rng.uniform(size=len(td)) < (1.0 + 2.0 * np.minimum(level, 1.0)) / 3.0
    td, level = td[keep], level[keep]
    scale = (1.0 + level) if d == 5 else 1.0
    vd = (base[d] + _SHIFT[d] * level) * scale + _NOISE[d] * rng.normal(size=len(td))
    times.append(td), var.append(np.full(len(td), d)), values.append(vd)
  times, var, values = (np.concatenate(x) for x in (times, var, values))
  order = np.lexsort((var, times))
  return times[order], var[order], np.maximum(values[order], 0.01)


def _static(rng, label: int) -> np.ndarray:
  age = np.clip(rng.normal(62 + 8 * label, 15), 16, 90)
  height = rng.normal(170, 10) if rng.uniform() > 0.4 else np.nan
  return np.array([round(age), rng.integers(0, 2), height, rng.integers(1, 5),
                   rng.normal(80, 15)], np.float32)


def generate(num_stays: int = 2000, seed: int = 0, positive_rate: float = 0.2,
             hours: float = 48.0) -> IcuData:
  """`num_stays` synthetic stays as `IcuData` (same layout as a PhysioNet set)."""
  rng = np.random.default_rng(seed)
  labels = (rng.uniform(size=num_stays) < positive_rate).astype(np.int32)
  events = [_stay(rng, int(y), hours) for y in labels]
  static = np.stack([_static(rng, int(y)) for y in labels])
  return IcuData.from_events(
      ids=np.arange(num_stays), labels=labels, static=static, static_names=STATIC,
      variables=VARIABLES, events=events)
