"""Trust checks for attributions, as numbers.

* Model-parameter randomisation (Adebayo et al. 2018, "Sanity checks for saliency
  maps"): attributions of the trained model against those of a re-initialised one, by
  Spearman rank correlation per example. A method that explains the model, not the
  input, gives a low correlation; ~1 means the method ignores the parameters.
* Faithfulness by deletion / insertion (Petsiuk et al. 2018, RISE): features are set to
  a baseline (deletion) or restored from it (insertion) in order of attribution, and
  the area under the score curve is compared with random orderings. A faithful
  attribution has a lower deletion AUC and a higher insertion AUC than random.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

# ---------------------------------------------------------------- randomisation


def spearman(a, b) -> np.ndarray:
  """Spearman rank correlation per example (B,) of two (B, ...) arrays (ties averaged)."""
  a = np.asarray(a, np.float64).reshape(len(a), -1)
  b = np.asarray(b, np.float64).reshape(len(b), -1)
  ra = stats.rankdata(a, axis=1) - (a.shape[1] + 1) / 2
  rb = stats.rankdata(b, axis=1) - (b.shape[1] + 1) / 2
  denom = np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(denom > 0, (ra * rb).sum(1) / denom, np.nan)


def layer_names(params) -> list[str]:
  """Top-level parameter groups (layers) in the order the model creates them."""
  return list(params.keys())


def cascading_params(trained, randomised) -> list[tuple[str, dict]]:
  """Cascading randomisation from the output: after step j the last j+1 layers are random."""
  names = layer_names(trained)
  out, current = [], dict(trained)
  for name in reversed(names):
    current = {**current, name: randomised[name]}
    out.append((name, current))
  return out


def independent_params(trained, randomised) -> list[tuple[str, dict]]:
  """One layer at a time re-initialised, the others trained."""
  return [(name, {**trained, name: randomised[name]}) for name in layer_names(trained)]


def randomisation_test(attribute: Callable, variables, random_variables, x,
                       mode: str = "full") -> dict:
  """Rank correlation of attributions, trained vs re-initialised parameters.

  `attribute(variables, x)` -> attributions (B, ...), best under `jax.jit` so that every
  parameter set reuses one compilation; `random_variables` come from `model.init` with
  another key. `mode`: "full" (all parameters re-initialised),
  "cascading" (layers re-initialised from the output down, cumulatively) or
  "independent" (one layer at a time). Returns, for each randomised model (keyed
  "full" or by layer name), the mean over examples of the Spearman correlation of
  |attribution| ("abs") and of the signed attribution ("signed"), and per example.
  """
  reference = np.asarray(attribute(variables, x))
  params, rparams = variables["params"], random_variables["params"]
  if mode == "full":
    candidates = [("full", rparams)]
  elif mode == "cascading":
    candidates = cascading_params(params, rparams)
  elif mode == "independent":
    candidates = independent_params(params, rparams)
  else:
    raise ValueError(f"randomisation mode {mode!r}: use full, cascading or independent")
  results = {}
  for name, p in candidates:
    other = np.asarray(attribute({**variables, "params": p}, x))
    abs_rho = spearman(np.abs(reference), np.abs(other))
    signed_rho = spearman(reference, other)
    results[name] = {"abs": float(np.nanmean(abs_rho)),
                     "signed": float(np.nanmean(signed_rho)),
                     "abs_per_example": abs_rho, "signed_per_example": signed_rho}
  return results


# ---------------------------------------------------------------- deletion / insertion


def _ranks(attribution):
  """Per example, the position of each feature when sorted by descending attribution."""
  flat = attribution.reshape(attribution.shape[0], -1)
  order = jnp.argsort(-flat, axis=1, stable=True)
  return jnp.argsort(order, axis=1, stable=True)


def step_counts(n: int, steps: int) -> np.ndarray:
  """Features changed at each of steps+1 points: round(j n / steps), j = 0..steps."""
  return np.round(np.arange(steps + 1) * n / steps).astype(np.int32)


@functools.partial(jax.jit, static_argnames=("fn", "steps", "mode"))
def curve(fn: Callable, x, attribution, steps: int = 20, baseline=0.0,
          mode: str = "deletion"):
  """Scores (B, steps+1) as the top-attributed features are deleted or inserted.

  Features are x's elements; to move whole pixels, give the attribution summed over
  channels and broadcast back (channels-last ties go together, in index order).
  """
  n = int(np.prod(x.shape[1:]))
  ranks = _ranks(attribution).reshape(x.shape)
  base = jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
  start, end = (x, base) if mode == "deletion" else (base, x)

  def score_at(k):
    return fn(jnp.where(ranks < k, end, start))

  return jax.lax.map(score_at, jnp.asarray(step_counts(n, steps))).T


def auc(scores, n: int, steps: int) -> np.ndarray:
  """Trapezoid area (B,) of scores over the fraction of features changed, in [0, 1]."""
  fraction = step_counts(n, steps) / n
  scores = np.asarray(scores, np.float64)
  return np.sum((scores[:, 1:] + scores[:, :-1]) / 2 * np.diff(fraction), axis=1)


@functools.partial(jax.jit, static_argnames=("fn", "steps"))
def _all_curves(fn, x, attribution, random_orders, steps, baseline):
  """Deletion and insertion curves of `attribution` and of each random ordering."""

  def both(a):
    return jnp.stack([curve(fn, x, a, steps, baseline, m) for m in ("deletion", "insertion")])

  return both(attribution), jax.lax.map(both, random_orders)


def random_orders(key, shape, seeds: int) -> np.ndarray:
  """`seeds` random attributions of `shape` (uniform), drawn from the key's bits."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  rng = np.random.default_rng(np.asarray(key).ravel())
  return rng.random((seeds,) + tuple(shape), np.float32)


def faithfulness(fn: Callable, x, attribution, key, steps: int = 20, baseline=0.0,
                 seeds: int = 5) -> dict:
  """Deletion and insertion AUCs of `attribution` and of random orderings (mean of seeds).

  Scores are in `fn`'s units (a logit or a probability); per-example AUCs and curves
  (random: mean over seeds) come back under "per_example". Lower deletion and higher insertion AUC than random = faithful.
  """
  n = int(np.prod(x.shape[1:]))
  orders = random_orders(key, x.shape, seeds)
  curves, randoms = map(np.asarray, _all_curves(fn, x, attribution, orders, steps, baseline))
  out = {}
  for i, mode in enumerate(("deletion", "insertion")):
    random_auc = np.mean([auc(r[i], n, steps) for r in randoms], axis=0)
    out[mode] = {"auc": auc(curves[i], n, steps), "random_auc": random_auc,
                 "curve": curves[i], "random_curve": randoms[:, i].mean(0),
                 "fraction": step_counts(n, steps) / n}
  summary = {f"{m}_auc": float(np.mean(out[m]["auc"])) for m in out}
  summary.update({f"random_{m}_auc": float(np.mean(out[m]["random_auc"])) for m in out})
  return {**summary, "per_example": out}
