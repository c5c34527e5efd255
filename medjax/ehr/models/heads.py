"""The classification head shared by the ICU sequence models."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class MortalityHead(nn.Module):
  """[sequence summary, static features] -> dropout -> one logit per example."""
  dropout: float = 0.0

  @nn.compact
  def __call__(self, summary, static=None, *, train: bool = False):
    x = summary if static is None else jnp.concatenate([summary, static], -1)
    x = nn.Dropout(self.dropout)(x, deterministic=not train)
    return nn.Dense(1, name="logit")(x)[..., 0]
