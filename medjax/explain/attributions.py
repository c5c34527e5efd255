"""Attribution methods over any score function of a batch.

Every method takes `fn`, a pure JAX function of a batch `x` (B, ...) returning one
score per example (B,), e.g. `target_score(lambda x: model.apply(v, x, train=False), 3)`,
and returns attributions with `x`'s shape. Score i must depend on `x[i]` only (true of
any model in evaluation mode), so one gradient of `sum(fn(x))` gives every example's
gradient at once. Methods are jitted with `fn` static, so a new `fn` compiles anew and
arrays it closes over become constants; to explain many batches, build `fn` inside
one jitted function of (variables, batch):

    @jax.jit
    def explain_batch(variables, batch):
      fn = target_score(lambda x: model.apply(variables, x, train=False), batch["label"])
      return integrated_gradients(fn, batch["image"], steps=32)
"""

from __future__ import annotations

import functools
import itertools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

ScoreFn = Callable[[jax.Array], jax.Array]

IG_METHODS = ("trapezoid", "riemann_left", "riemann_right", "riemann_middle")


# ---------------------------------------------------------------- scores


def _logits(outputs):
  """A model's logits: the outputs themselves, or their "logits" entry for dict outputs."""
  return outputs["logits"] if isinstance(outputs, dict) else outputs


def class_output(target, probability: bool = False) -> Callable[[jax.Array], jax.Array]:
  """Outputs (B, C) -> the logit (or probability) of class `target` (int or (B,)).

  One logit per example (C = 1, binary) gives the sigmoid when `probability` is set.
  """

  def score(outputs):
    logits = _logits(outputs)
    if probability:
      logits = (jax.nn.sigmoid(logits) if logits.shape[-1] == 1
                else jax.nn.softmax(logits, axis=-1))
    t = jnp.broadcast_to(jnp.asarray(target, jnp.int32), logits.shape[:1])
    return jnp.take_along_axis(logits, t[:, None], axis=-1)[:, 0]

  return score


def region_output(class_id: int, mask) -> Callable[[jax.Array], jax.Array]:
  """Outputs (B, *spatial, C) -> sum of class `class_id`'s logits where `mask` is set.

  `mask` is (*spatial) for one region shared by the batch, or (B, *spatial).
  """

  def score(outputs):
    logits = _logits(outputs)
    m = jnp.broadcast_to(jnp.asarray(mask, logits.dtype), logits.shape[:-1])
    return jnp.sum(logits[..., class_id] * m, axis=tuple(range(1, m.ndim)))

  return score


def target_score(apply_fn, target, probability: bool = False) -> ScoreFn:
  """Classification: x -> logit (or probability) of class `target` per example."""
  output = class_output(target, probability)
  return lambda x: output(apply_fn(x))


def region_score(apply_fn, class_id: int, mask) -> ScoreFn:
  """Segmentation: x -> sum of class `class_id`'s logits over the region `mask`."""
  output = region_output(class_id, mask)
  return lambda x: output(apply_fn(x))


# ---------------------------------------------------------------- gradients


def _grad(fn: ScoreFn, x):
  return jax.grad(lambda z: jnp.sum(fn(z)))(x)


@functools.partial(jax.jit, static_argnames=("fn",))
def gradients(fn: ScoreFn, x):
  """d fn(x)_i / d x_i per example (saliency)."""
  return _grad(fn, x)


@functools.partial(jax.jit, static_argnames=("fn",))
def grad_x_input(fn: ScoreFn, x, baseline=0.0):
  """Gradient times (x - baseline)."""
  return _grad(fn, x) * (x - baseline)


@functools.partial(jax.jit, static_argnames=("fn", "samples", "square", "batch_size"))
def smoothgrad(fn: ScoreFn, x, key, samples: int = 16, noise: float = 0.15,
               square: bool = False, batch_size: int | None = None):
  """Mean gradient over `samples` noisy copies (Smilkov et al. 2017).

  The noise sd is `noise` times each example's value range; `square` averages the
  squared gradients (SmoothGrad-Squared). `batch_size` noisy batches run at a time.
  """
  axes = tuple(range(1, x.ndim))
  span = jnp.max(x, axis=axes, keepdims=True) - jnp.min(x, axis=axes, keepdims=True)
  sigma = noise * span

  def one(k):
    g = _grad(fn, x + sigma * jax.random.normal(k, x.shape, x.dtype))
    return g * g if square else g

  grads = jax.lax.map(one, jax.random.split(key, samples), batch_size=batch_size)
  return jnp.mean(grads, axis=0)


# ---------------------------------------------------------------- integrated gradients


def ig_nodes(steps: int, method: str = "trapezoid") -> tuple[np.ndarray, np.ndarray]:
  """Path positions alpha in [0, 1] and quadrature weights for `steps` intervals."""
  k = np.arange(steps, dtype=np.float64)
  if method == "trapezoid":
    alphas = np.arange(steps + 1) / steps
    weights = np.full(steps + 1, 1.0 / steps)
    weights[[0, -1]] /= 2
    return alphas, weights
  offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}.get(method)
  if offset is None:
    raise ValueError(f"integrated gradients method {method!r}: use one of {IG_METHODS}")
  return (k + offset) / steps, np.full(steps, 1.0 / steps)


@functools.partial(jax.jit, static_argnames=("fn", "steps", "method", "batch_size"))
def integrated_gradients(fn: ScoreFn, x, baseline=0.0, steps: int = 32,
                         method: str = "trapezoid", batch_size: int | None = None,
                         segments=None):
  """Integrated gradients (Sundararajan et al. 2017) on the straight path from baseline.

  Returns (attributions, gap): gap (B,) is the completeness error
  sum(attributions) - (fn(x) - fn(baseline)), which goes to 0 as `steps` grows.
  `batch_size` path points run at a time. For packed inputs whose rows are not the
  examples (graph nodes), `segments` (rows,) gives each row's example index.
  """
  baseline = jnp.broadcast_to(jnp.asarray(baseline, x.dtype), x.shape)
  alphas, weights = ig_nodes(steps, method)
  delta = x - baseline

  def one(aw):
    alpha, weight = aw[0], aw[1]
    return weight * _grad(fn, baseline + alpha * delta)

  nodes = jnp.asarray(np.stack([alphas, weights], axis=1), x.dtype)
  summed = jnp.sum(jax.lax.map(one, nodes, batch_size=batch_size), axis=0)
  attributions = summed * delta
  change = fn(x) - fn(baseline)
  total = jnp.sum(attributions, axis=tuple(range(1, x.ndim)))
  if segments is not None:
    total = jax.ops.segment_sum(total, segments, num_segments=change.shape[0])
  return attributions, total - change


# ---------------------------------------------------------------- occlusion


def window_origins(shape, patch, stride) -> np.ndarray:
  """Corners (W, len(patch)) of sliding patches covering every position of `shape`."""
  per_axis = []
  for size, p, s in zip(shape, patch, stride):
    if not 0 < p <= size or s <= 0:
      raise ValueError(f"occlusion patch {tuple(patch)} / stride {tuple(stride)} does not "
                       f"fit spatial shape {tuple(shape)}")
    starts = list(range(0, size - p + 1, s))
    if starts[-1] + p < size:
      starts.append(size - p)
    per_axis.append(starts)
  return np.array(list(itertools.product(*per_axis)), np.int32)


def _window_mask(origin, shape, patch):
  """Boolean (*shape) indicator of the patch at `origin`."""
  mask = jnp.ones(shape, bool)
  for axis, (size, p) in enumerate(zip(shape, patch)):
    idx = jnp.arange(size)
    inside = (idx >= origin[axis]) & (idx < origin[axis] + p)
    mask = mask & jnp.expand_dims(inside, [a for a in range(len(shape)) if a != axis])
  return mask


@functools.partial(jax.jit, static_argnames=("fn", "patch", "stride", "batch_size"))
def occlusion(fn: ScoreFn, x, patch: tuple[int, ...], stride: tuple[int, ...] | None = None,
              baseline=0.0, batch_size: int = 16):
  """Score drop fn(x) - fn(x with a patch set to `baseline`), averaged per position.

  `patch` (and `stride`, default `patch`) cover x's axes 1..len(patch) (the spatial
  axes, in any number); trailing axes (channels) are occluded together. Windows slide
  over the whole input; `batch_size` windows run at a time.
  """
  stride = patch if stride is None else stride
  spatial = x.shape[1:1 + len(patch)]
  origins = window_origins(spatial, patch, stride)
  counts = np.zeros(spatial, np.float32)
  for o in origins:
    counts[tuple(slice(a, a + p) for a, p in zip(o, patch))] += 1
  trailing = x.ndim - 1 - len(patch)
  reference = fn(x)

  def drop(origin):
    mask = _window_mask(origin, spatial, patch)
    occluded = jnp.where(mask.reshape(mask.shape + (1,) * trailing), baseline, x)
    return mask, reference - fn(occluded)

  pad = -len(origins) % batch_size
  chunks = np.concatenate([origins, np.repeat(origins[:1], pad, 0)])
  weights = np.concatenate([np.ones(len(origins)), np.zeros(pad)]).astype(np.float32)
  chunks = chunks.reshape(-1, batch_size, len(patch))
  weights = weights.reshape(-1, batch_size)

  def chunk_step(total, chunk):
    masks, drops = jax.vmap(drop)(chunk[0])
    w = chunk[1].astype(x.dtype)
    weighted = masks.astype(x.dtype) * w.reshape((-1,) + (1,) * len(patch))
    add = jnp.einsum("w...,wb->b...", weighted, drops)
    return total + add, None

  total = jnp.zeros((x.shape[0],) + spatial, x.dtype)
  total, _ = jax.lax.scan(chunk_step, total, (jnp.asarray(chunks), jnp.asarray(weights)))
  per_position = total / jnp.asarray(counts, x.dtype)
  return jnp.broadcast_to(per_position.reshape(per_position.shape + (1,) * trailing), x.shape)
