"""Event sequences -> model inputs: hourly bins with masks and time since last observation
(GRU-D inputs), and per-timestamp tokens (Transformer inputs).

Conventions (Che et al., GRU-D, Sci Rep 2018):
* bin t covers hours [t * bin_hours, (t + 1) * bin_hours); an event exactly at the end of
  the window (48:00) goes into the last bin; later events are dropped. Several values of
  one variable in one bin are averaged.
* `mask[t, d]` is 1 where variable d was observed in bin t.
* `delta[t, d]` is the time since d was last observed *before* bin t:
  delta[0] = 0; delta[t] = bin_hours + (1 - mask[t-1]) * delta[t-1].
"""

from __future__ import annotations

import numpy as np

from medjax.ehr.data import IcuData


def bin_events(times, var_index, values, num_vars: int, num_bins: int = 48,
               bin_hours: float = 1.0) -> np.ndarray:
  """(num_bins, num_vars) bin means of one stay's events; NaN where unobserved."""
  out = bin_many(np.zeros(len(times), np.int64), times, var_index, values, 1, num_vars,
                 num_bins, bin_hours)
  return out[0]


def bin_many(stay, times, var_index, values, num_stays: int, num_vars: int,
             num_bins: int = 48, bin_hours: float = 1.0) -> np.ndarray:
  """(num_stays, num_bins, num_vars) bin means of flat events owned by `stay`."""
  times = np.asarray(times, np.float64)
  bins = np.floor(times / bin_hours).astype(np.int64)
  bins = np.where(np.isclose(times, num_bins * bin_hours), num_bins - 1, bins)
  keep = (bins >= 0) & (bins < num_bins)
  flat = (np.asarray(stay)[keep] * num_bins + bins[keep]) * num_vars + np.asarray(
      var_index)[keep]
  size = num_stays * num_bins * num_vars
  sums = np.bincount(flat, weights=np.asarray(values, np.float64)[keep], minlength=size)
  counts = np.bincount(flat, minlength=size)
  with np.errstate(invalid="ignore"):
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
  return means.reshape(num_stays, num_bins, num_vars).astype(np.float32)


def bin_set(data: IcuData, num_bins: int = 48, bin_hours: float = 1.0) -> np.ndarray:
  """(N, num_bins, V) bin means of every stay of `data`."""
  return bin_many(data.stay_of_event(), data.times, data.var_index, data.values, len(data),
                  len(data.variables), num_bins, bin_hours)


def time_since_last(mask: np.ndarray, bin_hours: float = 1.0) -> np.ndarray:
  """GRU-D's delta for a (..., T, V) observation mask, in hours."""
  mask = np.asarray(mask, np.float32)
  delta = np.zeros_like(mask)
  for t in range(1, mask.shape[-2]):
    delta[..., t, :] = bin_hours + (1.0 - mask[..., t - 1, :]) * delta[..., t - 1, :]
  return delta


def tokens(times, var_index, values, num_vars: int, max_hours: float = 48.0):
  """One token per distinct timestamp: `(token_times (L,), values (L, V) NaN-missing)`."""
  keep = np.asarray(times) <= max_hours + 1e-6
  times, var_index, values = times[keep], var_index[keep], values[keep]
  token_times, inverse = np.unique(times, return_inverse=True)
  grid = np.full((len(token_times), num_vars), np.nan, np.float32)
  grid[inverse, var_index] = values  # events are already unique per (time, variable)
  return token_times.astype(np.float32), grid
