"""The trust checks of one explained batch, as one JSON-ready dict: what `--mode=explain`
of every task writes to `explain/checks.json`.

    attr, checks = report.explain_and_check(
        model_apply, variables, random_variables, x, output, key=key,
        method="integrated_gradients")
    report.write_json(checks, os.path.join(workdir, "explain", "checks.json"))

`model_apply(variables, x, **kwargs)` is the model in evaluation mode (kwargs: `mutable`,
for Grad-CAM), `output` maps its outputs to one score per example (e.g.
`class_output(target)`, `region_output(c, mask)`). The checks:

* completeness of integrated gradients: |sum(IG) - (f(x) - f(baseline))|, absolute and
  relative to |f(x) - f(baseline)| (always computed, whatever `method` is shown);
* model-parameter randomisation (Adebayo et al. 2018): Spearman rho of |attribution| and
  signed attribution, trained vs re-initialised parameters;
* deletion / insertion AUC of `method`'s attribution against random orderings
  (features grouped over the trailing `group_axes`, e.g. an image's channels).
"""

from __future__ import annotations

import json
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from medjax.explain import attributions
from medjax.explain import checks
from medjax.explain import methods


def score_fn(model_apply: Callable, variables, output: Callable) -> attributions.ScoreFn:
  """x -> one score per example under `variables`."""
  return lambda x: output(model_apply(variables, x))


def attribute_with(method: str, model_apply, variables, x, output, key=None,
                   **options) -> tuple[jax.Array, dict]:
  """`methods.attribute` for a model given as (apply, variables, output)."""
  return methods.attribute(method, score_fn(model_apply, variables, output), x, key=key,
                           apply_fn=model_apply, variables=variables, output=output,
                           **options)


def method_options(explain_config, spatial_dims: int) -> dict:
  """The method's keyword options from `config.explain` (spatial_dims: occlusion axes)."""
  method = methods.check_method(explain_config.method)
  if method == "smoothgrad":
    return {"samples": explain_config.smoothgrad_samples}
  if method == "occlusion":
    return {"patch": (explain_config.occlusion_patch,) * spatial_dims}
  if method == "integrated_gradients":
    return {"steps": explain_config.ig_steps}
  return {}


def _ig_gap(model_apply, variables, x, output, baseline, steps, segments=None):
  """(|IG completeness gap| (B,), |f(x) - f(baseline)| (B,))."""
  fn = score_fn(model_apply, variables, output)
  _, gap = attributions.integrated_gradients(fn, x, baseline=baseline, steps=steps,
                                             segments=segments)
  base = jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
  return jnp.abs(gap), jnp.abs(fn(x) - fn(base))


def _gap_summary(gap, change, steps: int) -> dict:
  gap, change = np.asarray(gap, np.float64), np.asarray(change, np.float64)
  relative = gap / np.maximum(change, 1e-12)
  return {"steps": steps, "abs_gap_mean": float(gap.mean()), "abs_gap_max": float(gap.max()),
          "relative_gap_mean": float(relative.mean()),
          "relative_gap_max": float(relative.max()),
          "score_change_mean": float(change.mean()), "per_example_abs_gap": gap.tolist()}


def completeness(model_apply, variables, x, output, baseline=0.0, steps: int = 64,
                 segments=None) -> dict:
  """IG's completeness error per example and summarised (see module doc)."""
  gap, change = _ig_gap(model_apply, variables, x, output, baseline, steps, segments)
  return _gap_summary(gap, change, steps)


def grouped(attribution, group_axes: int):
  """Attribution summed over the trailing `group_axes` axes and broadcast back."""
  if group_axes <= 0:
    return attribution
  axes = tuple(range(attribution.ndim - group_axes, attribution.ndim))
  return jnp.broadcast_to(jnp.sum(attribution, axis=axes, keepdims=True), attribution.shape)


def informative_rho(reference, other, x, baseline=0.0) -> dict:
  """Spearman rho of trained vs re-initialised attributions over the entries where x
  differs from the baseline, per example (mean). Elsewhere IG and gradient x input are
  0 under any parameters, and those ties pull the plain rho towards 1 (zero-padded,
  windowed or binary inputs)."""
  rows = {"abs": [], "signed": []}
  keep = np.asarray(x) != np.asarray(baseline)
  for r, o, k in zip(np.asarray(reference), np.asarray(other), keep):
    if k.sum() < 3:
      continue
    rows["abs"].append(checks.spearman(np.abs(r[k])[None], np.abs(o[k])[None])[0])
    rows["signed"].append(checks.spearman(r[k][None], o[k][None])[0])
  return {"abs": float(np.nanmean(rows["abs"])) if rows["abs"] else float("nan"),
          "signed": float(np.nanmean(rows["signed"])) if rows["signed"] else float("nan"),
          "fraction": float(keep.reshape(len(keep), -1).mean())}


def _summary(result: dict) -> dict:
  """The randomisation / faithfulness result without its per-example arrays."""
  out = {}
  for name, value in result.items():
    if name == "per_example":
      continue
    if isinstance(value, dict):
      out[name] = {k: v for k, v in value.items() if not k.endswith("per_example")}
    else:
      out[name] = value
  return out


def explain_and_check(model_apply: Callable, variables, random_variables, x, output,
                      *, key, method: str = "integrated_gradients", baseline=0.0,
                      group_axes: int = 1, ig_steps: int = 64, faithfulness_steps: int = 20,
                      random_seeds: int = 5, probability: Callable | None = None,
                      **options) -> tuple[np.ndarray, dict]:
  """(attributions of `method`, the checks dict) for batch `x` (see module doc).

  `probability` (outputs -> (B,)), when given, scores the deletion / insertion curves
  in probability instead of `output`'s units. `options` go to the method.
  """
  method = methods.check_method(method)
  k_method, k_faith = jax.random.split(key)
  if method == "integrated_gradients":
    options.setdefault("steps", ig_steps)
  # Variables are arguments, not constants: trained and re-initialised share one compile.
  attribute = jax.jit(lambda v, xs: attribute_with(method, model_apply, v, xs, output,
                                                   key=k_method, **options))
  attr, extras = attribute(variables, x)
  if method == "integrated_gradients" and options["steps"] == ig_steps and baseline == 0.0 \
      and set(options) == {"steps"}:
    base = jnp.zeros_like(x)
    fn = score_fn(model_apply, variables, output)
    change = jnp.abs(fn(x) - fn(base))
    gap = _gap_summary(jnp.abs(extras["gap"]), change, ig_steps)
  else:
    gap = _gap_summary(*jax.jit(lambda v, xs: _ig_gap(model_apply, v, xs, output, baseline,
                                                      ig_steps))(variables, x), ig_steps)
  rand = checks.randomisation_test(lambda v, xs: attribute(v, xs)[0], variables,
                                   random_variables, x)
  twin = {**variables, "params": random_variables["params"]}  # as randomisation_test
  informative = informative_rho(attr, attribute(twin, x)[0], x, baseline)
  faith_fn = score_fn(model_apply, variables, probability or output)
  faith = checks.faithfulness(faith_fn, x, grouped(attr, group_axes), k_faith,
                              steps=faithfulness_steps, baseline=baseline, seeds=random_seeds)
  result = {"method": method, "examples": int(x.shape[0]), "baseline": float(baseline),
            "integrated_gradients_completeness": gap,
            "randomisation": {**_summary(rand), "informative": informative},
            "faithfulness": _summary(faith),
            "faithful": bool(faith["deletion_auc"] < faith["random_deletion_auc"]
                             and faith["insertion_auc"] > faith["random_insertion_auc"])}
  if "gap" in extras:
    result["method_completeness_abs_gap_mean"] = float(np.mean(np.abs(extras["gap"])))
  return np.asarray(attr), {**result, "_faithfulness_curves": faith}


def _jsonable(value):
  if isinstance(value, dict):
    return {k: _jsonable(v) for k, v in value.items() if not str(k).startswith("_")}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, (np.ndarray, jax.Array)):
    return np.asarray(value).tolist()
  if isinstance(value, np.generic):
    return value.item()
  return value


def write_json(result: dict, path: str) -> None:
  """Writes the checks (keys starting with "_", e.g. the raw curves, left out)."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(_jsonable(result), f, indent=2, allow_nan=True)
