"""The DP-SGD gradient rule: per-example gradients, L2 clipping, Gaussian noise.

`private_value_and_grad(key, loss_fn, params, batch, ...)` has the engine's
gradient-rule signature once `key` is bound (`make_grad_rule`), so it plugs into
`steps.UpdateContext.value_and_grad` and the default gradient step of any task:

1. Each row of `batch` (leading axis) is one example: `loss_fn` runs on it as a
   batch of one (`jax.vmap` over rows with a unit batch axis added), giving that
   example's loss and gradient g_i. A task whose loss is a mean over the batch thus
   contributes its per-example loss; weights normalised within a batch (the EHR
   task's positive-class weight) cancel on a batch of one.
2. g_i is scaled to L2 norm <= clip_norm (C); rows with `_mask` 0 contribute 0.
3. The clipped sum gets N(0, (sigma C)^2) noise per coordinate (key from the step
   key) and is divided by the *expected* batch size (the Poisson convention: the
   realised size is private). The optimiser then sees this as the gradient.

With `microbatches` > 1 the rows are processed in that many chunks by `lax.scan`
(gradient accumulation: memory of one chunk's per-example gradients). Dropout
keys are shared by the rows of a step (loss_fn is given one key).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def example_mask(batch) -> jax.Array:
  """[rows] float: 1 for rows holding a real example (any `_mask` entry > 0)."""
  mask = batch["_mask"]
  return (mask.reshape(mask.shape[0], -1).max(axis=1) > 0).astype(jnp.float32)


def _per_example(loss_fn, params, batch):
  """((losses [rows], aux stacked), grads stacked): each row as a batch of one."""
  def one(example):
    example = jax.tree.map(lambda x: x[None], example)
    return jax.value_and_grad(loss_fn, has_aux=True)(params, example)
  return jax.vmap(one)(batch)


def _weighted_sum(weights, tree):
  return jax.tree.map(lambda x: jnp.tensordot(weights, x.astype(jnp.float32), axes=1), tree)


def clipped_sum(loss_fn, params, batch, clip_norm: float):
  """Sums over the real rows of: clipped gradients, losses, aux; and the row count."""
  mask = example_mask(batch)
  (losses, aux), grads = _per_example(loss_fn, params, batch)
  sq = sum(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1)
           for g in jax.tree.leaves(grads))
  norms = jnp.sqrt(sq)
  scale = jnp.where(mask > 0, jnp.minimum(1.0, clip_norm / jnp.maximum(norms, 1e-12)), 0.0)
  real = mask > 0
  # where(): a padding row's gradient may be NaN, and NaN * 0 is NaN.
  grads = jax.tree.map(
      lambda g: jnp.tensordot(scale, jnp.where(real.reshape((-1,) + (1,) * (g.ndim - 1)),
                                                g, 0.0), axes=1).astype(g.dtype), grads)
  losses = jnp.where(real, losses, 0.0)
  aux = jax.tree.map(lambda a: jnp.where(real.reshape((-1,) + (1,) * (a.ndim - 1)), a, 0),
                     aux)
  return grads, jnp.sum(losses), _weighted_sum(mask, aux), jnp.sum(mask)


def _chunks(batch, microbatches: int):
  """[rows, ...] -> [microbatches, rows / microbatches, ...]; chunk k holds rows
  k, k + m, ... so a chunk stays spread over the devices the rows are sharded on."""
  def split(x):
    x = x.reshape(x.shape[0] // microbatches, microbatches, *x.shape[1:])
    return jnp.moveaxis(x, 1, 0)
  return jax.tree.map(split, batch)


def accumulated_clipped_sum(loss_fn, params, batch, clip_norm: float, microbatches: int):
  if microbatches <= 1:
    return clipped_sum(loss_fn, params, batch, clip_norm)
  chunks = _chunks(batch, microbatches)
  first = jax.tree.map(lambda x: x[0], chunks)
  shapes = jax.eval_shape(functools.partial(clipped_sum, loss_fn, params,
                                            clip_norm=clip_norm), first)
  init = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

  def body(total, chunk):
    part = clipped_sum(loss_fn, params, chunk, clip_norm)
    return jax.tree.map(jnp.add, total, part), None
  total, _ = jax.lax.scan(body, init, chunks)
  return total


def add_noise(tree, key, std: float):
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(key, len(leaves))
  noised = [x + std * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
  return jax.tree.unflatten(treedef, noised)


def private_value_and_grad(key, loss_fn, params, batch, *, clip_norm: float,
                           noise_multiplier: float, expected_batch_size: float,
                           microbatches: int = 1):
  """((mean loss, mean aux) over the real rows, privatised gradient); see module doc."""
  grads, loss_sum, aux_sum, count = accumulated_clipped_sum(loss_fn, params, batch,
                                                            clip_norm, microbatches)
  if noise_multiplier > 0:
    grads = add_noise(grads, key, noise_multiplier * clip_norm)
  grads = jax.tree.map(lambda g: g / expected_batch_size, grads)
  denominator = jnp.maximum(count, 1.0)
  aux = jax.tree.map(lambda a: a / denominator, aux_sum)
  return (loss_sum / denominator, aux), grads


def make_grad_rule(clip_norm: float, noise_multiplier: float, expected_batch_size: float,
                   microbatches: int = 1):
  """key -> value_and_grad(loss_fn, params, batch): what `steps.make_train_step`'s
  `grad_rule` takes (it passes a key derived from each step's key)."""
  def rule(key):
    return functools.partial(private_value_and_grad, key, clip_norm=float(clip_norm),
                             noise_multiplier=float(noise_multiplier),
                             expected_batch_size=float(expected_batch_size),
                             microbatches=int(microbatches))
  return rule
