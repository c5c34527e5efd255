"""Layers shared by the classifiers: channel scaling, float32 BatchNorm, pooling, the head."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


def scaled(channels: int, width: float) -> int:
  """`channels * width`, rounded, at least 1 (the `width` multiplier of every model)."""
  return max(1, int(round(channels * width)))


def batch_norm(train: bool, name: str | None = None) -> nn.BatchNorm:
  """BatchNorm in float32 (output float32 whatever the compute dtype), momentum 0.9."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=jnp.float32,
                      name=name)


def max_pool(x, spatial_dims: int, window: int = 3, stride: int = 2, pad: int = 1):
  """Max pooling with -inf padding (torchvision's MaxPool(3, 2, padding=1))."""
  return nn.max_pool(x, (window,) * spatial_dims, (stride,) * spatial_dims,
                     padding=((pad, pad),) * spatial_dims)


def classify(x, num_outputs: int, dropout: float, train: bool):
  """Global average pooling (of a (B, *spatial, C) map), dropout (train only),
  float32 dense -> logits (B, num_outputs).

  Must be called inside a compact method: the layers join the calling module,
  as `Dropout_0` and `head`.
  """
  x = jnp.mean(x.astype(jnp.float32), axis=tuple(range(1, x.ndim - 1)))  # (B, C) stays
  if dropout > 0:
    x = nn.Dropout(dropout, deterministic=not train)(x)
  return nn.Dense(num_outputs, dtype=jnp.float32, name="head")(x)
