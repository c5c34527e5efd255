"""Grad-CAM (Selvaraju et al. 2017) for Flax Linen models, in 2D and 3D.

A convolutional model marks its final feature map (B, *spatial, K) with
`x = mark_features(self, x)`: that sows it as the "features" intermediate and adds a
zero "perturbations" variable when one is passed in, whose gradient is d(score)/d(features)
(the idea of Flax's `Module.perturb`, without creating the variable at `init`, so the
model's variables and batch size are unchanged). Grad-CAM then weighs each channel by
its spatially averaged gradient, sums, keeps the positive part and resizes (linearly)
to the input's spatial shape.
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp

from medjax.engine.errors import InputError

FEATURES = "features"
_HOOK = "features_hook"
_PERTURBATIONS = "perturbations"

NO_FEATURES = (
    "--config.explain.method=gradcam needs a convolutional feature map, but this model has none "
    "(no convolutional layer marks a 'features' intermediate); use another "
    "--config.explain.method (gradients, grad_x_input, smoothgrad, integrated_gradients, "
    "occlusion)")


def mark_features(module: nn.Module, x):
  """Marks `x` as the module's Grad-CAM feature map; returns it (plus any perturbation)."""
  module.sow("intermediates", FEATURES, x)
  module.sow("intermediates", _HOOK, jnp.zeros((), x.dtype))
  if module.has_variable(_PERTURBATIONS, FEATURES):
    x = x + module.get_variable(_PERTURBATIONS, FEATURES)
  return x


def _strip(variables):
  return {k: v for k, v in variables.items() if k not in ("intermediates", _PERTURBATIONS)}


def _feature_path(intermediates):
  """Path (module names + FEATURES) of the last module that sowed features."""
  flat = traverse_util.flatten_dict(intermediates)
  paths = [k for k in flat if k[-1] == FEATURES]
  if not paths:
    raise InputError(NO_FEATURES)
  path = paths[-1]
  if path[:-1] + (_HOOK,) not in flat:
    raise ValueError(
        f"module {'/'.join(path[:-1]) or '<root>'} sows 'features' but does not call "
        "medjax.explain.mark_features, so Grad-CAM cannot take its gradient; replace the "
        "sow with `x = mark_features(self, x)`")
  return path, flat[path][-1]


def feature_gradients(apply_fn, variables, x, score):
  """(features A, d sum(score)/dA) at the model's marked feature map."""
  variables = _strip(variables)
  _, state = apply_fn(variables, x, mutable=["intermediates"])
  path, features = _feature_path(state.get("intermediates", {}))
  zeros = traverse_util.unflatten_dict({path: jnp.zeros_like(features)})

  def total(perturbation):
    outputs = apply_fn({**variables, _PERTURBATIONS: perturbation}, x)
    return jnp.sum(score(outputs))

  grads = jax.grad(total)(zeros)
  return features, traverse_util.flatten_dict(grads)[path]


@functools.partial(jax.jit, static_argnames=("apply_fn", "score", "resize"))
def gradcam(apply_fn: Callable, variables, x, score: Callable, resize: bool = True):
  """Grad-CAM maps (B, *spatial) at the input's spatial size (or the features' size).

  `apply_fn(variables, x, mutable=...)` is the model's apply (e.g.
  `functools.partial(model.apply, train=False)`); `score` maps its outputs to one
  score per example, e.g. `class_output(target)` or `region_output(c, mask)`.
  Raises InputError (naming --config.explain.method=gradcam) if no feature map is marked.
  """
  features, grads = feature_gradients(apply_fn, variables, x, score)
  spatial_axes = tuple(range(1, features.ndim - 1))
  weights = jnp.mean(grads, axis=spatial_axes)  # (B, K)
  cam = jax.nn.relu(jnp.einsum("b...k,bk->b...", features, weights))
  if not resize:
    return cam
  shape = (x.shape[0],) + x.shape[1:1 + len(spatial_axes)]
  return jax.image.resize(cam, shape, "linear")
