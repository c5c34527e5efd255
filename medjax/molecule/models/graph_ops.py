"""Gather / scatter over padded graph blocks with a leading block axis.

Arrays are `[blocks, items, ...]` and index arrays `[blocks, items]`; every op maps
over the block axis, so blocks (one per device) never mix. Segment ids must be
sorted within each block (`batching.py` sorts edges by destination atom and atoms
by molecule): that makes the segment sums about 4x faster on CPU.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Graph(NamedTuple):
  """One batch of padded blocks, as the encoders see it (see `batching.py`)."""
  atoms: jax.Array  # [B, N, atom features]
  bonds: jax.Array  # [B, E, bond features]
  src: jax.Array  # [B, E]
  dst: jax.Array  # [B, E]
  rev: jax.Array  # [B, E]
  node_mask: jax.Array  # [B, N]
  edge_mask: jax.Array  # [B, E]

  @property
  def num_nodes(self) -> int:
    return self.atoms.shape[1]


def gather(x: jax.Array, index: jax.Array) -> jax.Array:
  """x [B, N, ...], index [B, M] -> [B, M, ...]."""
  return jax.vmap(lambda a, i: a[i])(x, index)


def segment_sum(data: jax.Array, segment_ids: jax.Array, num_segments: int) -> jax.Array:
  """data [B, M, ...], segment_ids [B, M] -> [B, num_segments, ...]."""
  return jax.vmap(lambda d, s: jax.ops.segment_sum(
      d, s, num_segments, indices_are_sorted=True))(data, segment_ids)


def segment_max(data: jax.Array, segment_ids: jax.Array, num_segments: int) -> jax.Array:
  return jax.vmap(lambda d, s: jax.ops.segment_max(
      d, s, num_segments, indices_are_sorted=True))(data, segment_ids)


def segment_softmax(logits: jax.Array, segment_ids: jax.Array, num_segments: int,
                    mask: jax.Array) -> jax.Array:
  """Softmax of `logits [B, M, ...]` within each segment; masked items get 0."""
  mask = mask.reshape(mask.shape + (1,) * (logits.ndim - mask.ndim))
  logits = jnp.where(mask > 0, logits, -1e9)
  top = jax.lax.stop_gradient(segment_max(logits, segment_ids, num_segments))
  z = jnp.exp(logits - gather(top, segment_ids)) * mask
  total = segment_sum(z, segment_ids, num_segments)
  return z / jnp.maximum(gather(total, segment_ids), 1e-12)
