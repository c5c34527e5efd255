"""Glycaemic control metrics over blood-glucose traces, and intervals over episodes.

`glycaemic_metrics(bg, mask)` takes traces (..., T) in mg/dL and a mask (..., T)
that is 1 for the readings of an episode (0 after it terminated, or padding) and
gives per-episode values (...,):

* time in range 70-180 (inclusive), below 70, below 54, above 180, above 250: the
  fractions of the episode's readings (international consensus ranges);
* mean BG; LBGI, HBGI and the risk index LBGI + HBGI (Kovatchev et al.):
  f(BG) = 1.509 (ln(BG)^1.084 - 5.381), risk = 10 f^2, LBGI = the mean over all
  readings of the risk where f < 0 (0 elsewhere), HBGI likewise where f > 0.
  `convention="simglucose"` averages each over only its own side's readings, as
  `simglucose.analysis.risk.risk_index` does (0 when there are none).

A trace with no valid reading gives NaN. `interval` and `summarize` give a mean
and a t or bootstrap confidence interval over episodes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from medjax.engine.errors import InputError

CONVENTIONS = ("kovatchev", "simglucose")
METHODS = ("t", "bootstrap")
# name: (lower bound or None, upper bound or None, bounds inclusive)
RANGES = {
    "time_in_range": (70.0, 180.0, True),
    "time_below_70": (None, 70.0, False),
    "time_below_54": (None, 54.0, False),
    "time_above_180": (180.0, None, False),
    "time_above_250": (250.0, None, False),
}


def risk_f(bg) -> jax.Array:
  """Kovatchev's symmetrised BG scale (0 at ~112.5 mg/dL); BG clipped at 1 mg/dL."""
  return 1.509 * (jnp.log(jnp.maximum(bg, 1.0))**1.084 - 5.381)


def risk(bg) -> tuple[jax.Array, jax.Array]:
  """(low risk, high risk) of each reading: 10 f^2 on f's side, 0 on the other."""
  f = risk_f(bg)
  r = 10.0 * f**2
  return jnp.where(f < 0, r, 0.0), jnp.where(f > 0, r, 0.0)


def _mean(x, weights):
  total = jnp.sum(weights, axis=-1)
  return jnp.where(total > 0, jnp.sum(x * weights, -1) / jnp.maximum(total, 1e-12),
                   jnp.nan)


def _in_range(bg, low, high, inclusive):
  above = (bg >= low if inclusive else bg > low) if low is not None else True
  below = (bg <= high if inclusive else bg < high) if high is not None else True
  return jnp.asarray(above & below, jnp.float32)


def glycaemic_metrics(bg, mask=None, convention: str = "kovatchev"
                      ) -> dict[str, jax.Array]:
  """Per-episode metrics over the last axis of `bg` (see the module docstring)."""
  if convention not in CONVENTIONS:
    raise InputError(f"unknown risk convention {convention!r} "
                     f"({' | '.join(CONVENTIONS)})")
  bg = jnp.asarray(bg, jnp.float32)
  mask = jnp.ones_like(bg) if mask is None else jnp.asarray(mask, jnp.float32)
  bg = jnp.where(mask > 0, bg, 112.5)  # keep masked readings finite
  out = {name: _mean(_in_range(bg, *spec), mask) for name, spec in RANGES.items()}
  out["mean_bg"] = _mean(bg, mask)
  low, high = risk(bg)
  if convention == "kovatchev":
    lbgi, hbgi = _mean(low, mask), _mean(high, mask)
  else:
    f = risk_f(bg)
    lbgi = jnp.nan_to_num(_mean(low, mask * (f < 0)))
    hbgi = jnp.nan_to_num(_mean(high, mask * (f > 0)))
    lbgi, hbgi = [jnp.where(mask.sum(-1) > 0, x, jnp.nan) for x in (lbgi, hbgi)]
  out.update(lbgi=lbgi, hbgi=hbgi, risk_index=lbgi + hbgi)
  return out


def _valid(values, mask=None) -> np.ndarray:
  values = np.asarray(values, np.float64).reshape(-1)
  keep = np.isfinite(values)
  if mask is not None:
    keep &= np.asarray(mask, bool).reshape(-1)
  return values[keep]


def t_interval(values, mask=None, level: float = 0.95) -> tuple[float, float, float]:
  """(mean, low, high): Student-t interval of the mean over the valid episodes."""
  x = _valid(values, mask)
  if x.size == 0:
    return (float("nan"),) * 3
  mean = float(x.mean())
  if x.size == 1:
    return mean, float("nan"), float("nan")
  half = scipy.stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
  return mean, mean - half, mean + half


def bootstrap_interval(values, key, mask=None, level: float = 0.95,
                       num_resamples: int = 2000) -> tuple[float, float, float]:
  """(mean, low, high): percentile bootstrap of the mean over the valid episodes."""
  x = jnp.asarray(_valid(values, mask))
  if x.size == 0:
    return (float("nan"),) * 3
  idx = jax.random.randint(key, (num_resamples, x.size), 0, x.size)
  means = jnp.mean(x[idx], axis=1)
  alpha = (1.0 - level) / 2
  low, high = jnp.quantile(means, jnp.array([alpha, 1.0 - alpha]))
  return float(x.mean()), float(low), float(high)


def interval(values, mask=None, method: str = "t", key=None, level: float = 0.95):
  """(mean, low, high) by `method` ("t", or "bootstrap", which needs `key`)."""
  if method not in METHODS:
    raise InputError(f"unknown interval method {method!r} ({' | '.join(METHODS)})")
  if method == "t":
    return t_interval(values, mask, level)
  if key is None:
    raise ValueError("bootstrap intervals need a PRNG key")
  return bootstrap_interval(values, key, mask, level)


def summarize(per_episode: dict, mask=None, method: str = "t", key=None,
              level: float = 0.95) -> dict[str, dict[str, float]]:
  """{name: {mean, low, high, n}} for each per-episode metric."""
  keys = (jax.random.split(key, len(per_episode)) if key is not None
          else [None] * len(per_episode))
  out = {}
  for (name, values), k in zip(per_episode.items(), keys):
    mean, low, high = interval(values, mask, method, k, level)
    out[name] = dict(mean=mean, low=low, high=high, n=int(_valid(values, mask).size))
  return out
