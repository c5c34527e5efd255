"""The seed's small CNN that classifies CT images, for 2D and 3D.

`len(features)` blocks of 3^d conv -> BatchNorm -> ReLU, with 2^d max pooling
after every block but the last; the last block's map is sown as
`intermediates/features` (for Grad-CAM), then global average pooling, a hidden
dense layer with ReLU, dropout and the dense head. Any input size works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from medjax.classification.models import layers
from medjax.explain.gradcam import mark_features


class SeedCNN(nn.Module):
  """Small CNN returning float32 logits (B, num_outputs).

  Attributes:
    num_outputs: logits per image.
    features: channels per conv block (times `width`).
    hidden: units of the dense layer before the head (times `width`).
    spatial_dims: 2 or 3; images are (B, *spatial, C) channels-last.
    dropout: rate before the head ('dropout' RNG stream, train only).
    dtype: compute dtype of the convolutions; parameters, BatchNorm and the
      dense layers stay float32.
    width: multiplier on every channel count.
  """

  num_outputs: int
  features: Sequence[int] = (32, 64, 128)
  hidden: int = 128
  spatial_dims: int = 2
  dropout: float = 0.0
  dtype: Any = jnp.float32
  width: float = 1.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    d, dt = self.spatial_dims, self.dtype
    x = x.astype(dt)
    for i, channels in enumerate(self.features):
      if i > 0:
        x = nn.max_pool(x, (2,) * d, (2,) * d)
      x = nn.Conv(layers.scaled(channels, self.width), (3,) * d, padding="SAME",
                  use_bias=False, dtype=dt, name=f"conv{i + 1}")(x)
      x = nn.relu(layers.batch_norm(train, name=f"norm{i + 1}")(x)).astype(dt)
    x = mark_features(self, x)  # sown as intermediates/features, for Grad-CAM
    x = jnp.mean(x.astype(jnp.float32), axis=tuple(range(1, d + 1)))
    x = nn.relu(nn.Dense(layers.scaled(self.hidden, self.width), name="hidden")(x))
    return layers.classify(x, self.num_outputs, self.dropout, train)
