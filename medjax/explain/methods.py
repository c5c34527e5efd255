"""One entry point by method name, for the tasks' `--mode=explain` (`--config.explain.method`)."""

from __future__ import annotations

import difflib
from typing import Callable

import jax.numpy as jnp

from medjax.engine.errors import InputError
from medjax.explain import attributions
from medjax.explain.gradcam import gradcam

METHODS = ("gradients", "grad_x_input", "smoothgrad", "integrated_gradients", "occlusion",
           "gradcam")


def check_method(method: str) -> str:
  """The method name, or InputError naming --config.explain.method with the closest choice."""
  if method in METHODS:
    return method
  close = difflib.get_close_matches(method, METHODS, n=1)
  hint = f" (did you mean {close[0]!r}?)" if close else ""
  raise InputError(f"--config.explain.method={method}: unknown method{hint}; choose one of "
                   f"{', '.join(METHODS)}")


def attribute(method: str, fn: Callable, x, *, key=None, apply_fn=None, variables=None,
              output=None, **options) -> tuple[jnp.ndarray, dict]:
  """(attributions with x's shape, extras) for `method` on score function `fn`.

  smoothgrad needs `key`; occlusion `patch=`; gradcam the model instead of `fn`:
  `apply_fn(variables, x, mutable=...)`, `variables` and `output` (outputs -> (B,)), and
  its map (B, *spatial) is broadcast over x's trailing axes. Extras: integrated
  gradients' completeness "gap" (B,). `options` go to the method.
  """
  method = check_method(method)
  if method == "integrated_gradients":
    attr, gap = attributions.integrated_gradients(fn, x, **options)
    return attr, {"gap": gap}
  if method == "smoothgrad":
    if key is None:
      raise ValueError("smoothgrad needs a PRNG key")
    return attributions.smoothgrad(fn, x, key, **options), {}
  if method == "gradcam":
    if apply_fn is None or variables is None or output is None:
      raise ValueError("gradcam needs apply_fn, variables and output (not a score fn)")
    cam = gradcam(apply_fn, variables, x, output, **options)
    cam = cam.reshape(cam.shape + (1,) * (x.ndim - cam.ndim))
    return jnp.broadcast_to(cam, x.shape), {}
  plain = {"gradients": attributions.gradients, "grad_x_input": attributions.grad_x_input,
           "occlusion": attributions.occlusion}
  return plain[method](fn, x, **options), {}
