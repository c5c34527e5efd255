"""Normalisation of time series and static descriptors with training-split statistics.

`Normaliser.fit(data, train_indices)` looks only at the training stays. Right-skewed
laboratory values are log1p-transformed first; every series is then standardised and
clipped to +-`clip`. Static features: numeric descriptors standardised with a missing
indicator, Gender as 0/1 with a missing indicator, ICUType one-hot. The statistics
serialise to JSON (`to_dict` / `from_dict`) and are stored beside the checkpoint, so a
trained model evaluated on another set directory uses the training statistics.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from medjax.ehr.data import IcuData

LOG_VARIABLES = ("ALP", "ALT", "AST", "BUN", "Bilirubin", "Creatinine", "Glucose",
                 "Lactate", "Platelets", "TroponinI", "TroponinT", "Urine", "WBC")
CATEGORICAL = {"ICUType": (1, 2, 3, 4)}
BINARY = ("Gender",)


@dataclasses.dataclass
class Normaliser:
  variables: tuple[str, ...]
  mean: np.ndarray  # (V,) of the (log-)transformed training observations
  std: np.ndarray  # (V,)
  static_names: tuple[str, ...]
  static_mean: np.ndarray  # (S,) (unused entries for categorical / binary descriptors)
  static_std: np.ndarray  # (S,)
  clip: float = 6.0

  @classmethod
  def fit(cls, data: IcuData, train_indices, clip: float = 6.0) -> Normaliser:
    train = np.zeros(len(data), bool)
    train[np.asarray(train_indices)] = True
    in_train = train[data.stay_of_event()]
    num_vars = len(data.variables)
    raw = _log_transform(data.values[in_train][:, None].astype(np.float64),
                         data.var_index[in_train][:, None], data.variables)[:, 0]
    var = data.var_index[in_train].astype(np.int64)
    count = np.bincount(var, minlength=num_vars)
    mean = np.bincount(var, raw, minlength=num_vars) / np.maximum(count, 1)
    sq = np.bincount(var, (raw - mean[var]) ** 2, minlength=num_vars)
    std = np.sqrt(sq / np.maximum(count, 1))
    s_mean, s_std = _nan_moments(data.static[train].astype(np.float64),
                                 len(data.static_names))
    fix = lambda s: np.where(s > 1e-6, s, 1.0).astype(np.float32)
    return cls(tuple(data.variables), mean.astype(np.float32), fix(std),
               tuple(data.static_names), s_mean.astype(np.float32), fix(s_std), clip)

  def series(self, values: np.ndarray) -> np.ndarray:
    """(..., V) raw values -> standardised, clipped; NaN (unobserved) stays NaN."""
    index = np.broadcast_to(np.arange(len(self.variables)), values.shape)
    z = (_log_transform(values, index, self.variables) - self.mean) / self.std
    return np.clip(z, -self.clip, self.clip).astype(np.float32)

  def event_values(self, var_index: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Standardised values of flat events."""
    z = (_log_transform(values, var_index, self.variables) - self.mean[var_index]) / \
        self.std[var_index]
    return np.clip(z, -self.clip, self.clip).astype(np.float32)

  def static_features(self, static: np.ndarray) -> np.ndarray:
    """(N, S) raw descriptors -> (N, F) float32 model features without NaN."""
    cols = []
    for j, name in enumerate(self.static_names):
      x = static[:, j]
      missing = np.isnan(x)
      if name in CATEGORICAL:
        cols += [(x == c).astype(np.float32) for c in CATEGORICAL[name]]
        continue
      z = x if name in BINARY else (x - self.static_mean[j]) / self.static_std[j]
      cols += [np.where(missing, 0.0, np.clip(z, -self.clip, self.clip)), missing]
    return np.stack(cols, -1).astype(np.float32) if cols else np.zeros((len(static), 0),
                                                                         np.float32)

  def to_dict(self) -> dict:
    out = dataclasses.asdict(self)
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in out.items()}

  @classmethod
  def from_dict(cls, d: dict) -> Normaliser:
    arrays = ("mean", "std", "static_mean", "static_std")
    kw = {k: (np.asarray(v, np.float32) if k in arrays else v) for k, v in d.items()}
    kw["variables"], kw["static_names"] = tuple(kw["variables"]), tuple(kw["static_names"])
    return cls(**kw)


def _nan_moments(x: np.ndarray, width: int):
  """Column mean and std ignoring NaN (0 and 1 for columns with no value)."""
  seen = ~np.isnan(x)
  count = seen.sum(0)
  mean = np.where(seen, x, 0.0).sum(0) / np.maximum(count, 1)
  var = np.where(seen, (x - mean) ** 2, 0.0).sum(0) / np.maximum(count, 1)
  std = np.where(count > 0, np.sqrt(var), 1.0)
  return mean.reshape(width), std.reshape(width)


def _log_transform(values, var_index, variables) -> np.ndarray:
  """log1p on the columns of right-skewed variables (chosen by `var_index`)."""
  is_log = np.array([v in LOG_VARIABLES for v in variables], bool)
  values = np.asarray(values, np.float64)
  with np.errstate(invalid="ignore"):
    return np.where(is_log[var_index], np.log1p(np.maximum(values, 0.0)), values)
