"""DenseNet-121 (Huang et al., 2017; CheXNet's network) for 2D and 3D images.

torchvision's layout: a 7^d stride-2 stem convolution with 64 channels,
BatchNorm, ReLU and 3^d stride-2 max pooling (with `small_input=True`: a 3^d
stride-1 convolution, no pooling); four dense blocks of (6, 12, 24, 16) layers,
each layer BN -> ReLU -> 1^d conv to `bn_size * growth` -> BN -> ReLU -> 3^d conv
to `growth` channels, concatenated onto its input; between blocks a transition
BN -> ReLU -> 1^d conv halving the channels (compression 0.5) -> 2^d average
pooling; a final BatchNorm and ReLU. That map is sown as
`intermediates/features` (for Grad-CAM), then global average pooling, dropout
and the dense head. In 2D with 3 input channels and 1000 outputs: 7,978,856
parameters, as torchvision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from medjax.classification.models import layers
from medjax.explain.gradcam import mark_features


class DenseLayer(nn.Module):
  """BN-ReLU-conv1 (bottleneck), BN-ReLU-conv3; returns `growth` new channels."""

  growth: int
  bn_size: int = 4
  spatial_dims: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    d, dt = self.spatial_dims, self.dtype
    y = nn.relu(layers.batch_norm(train)(x)).astype(dt)
    y = nn.Conv(self.bn_size * self.growth, (1,) * d, use_bias=False, dtype=dt)(y)
    y = nn.relu(layers.batch_norm(train)(y)).astype(dt)
    return nn.Conv(self.growth, (3,) * d, padding=((1, 1),) * d, use_bias=False,
                   dtype=dt)(y)


class Transition(nn.Module):
  """BN-ReLU, 1^d conv to `features` channels, 2^d average pooling (stride 2)."""

  features: int
  spatial_dims: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    d, dt = self.spatial_dims, self.dtype
    x = nn.relu(layers.batch_norm(train)(x)).astype(dt)
    x = nn.Conv(self.features, (1,) * d, use_bias=False, dtype=dt)(x)
    return nn.avg_pool(x, (2,) * d, (2,) * d)


class DenseNet(nn.Module):
  """DenseNet classifier returning float32 logits (B, num_outputs).

  Attributes:
    num_outputs: logits per image (classes, or findings for multi-label).
    growth_rate, block_config, bn_size, init_features, compression: the
      architecture (defaults: DenseNet-121).
    spatial_dims: 2 or 3; images are (B, *spatial, C) channels-last.
    dropout: rate before the dense head ('dropout' RNG stream, train only).
    dtype: compute dtype of the convolutions; parameters, BatchNorm and the head
      stay float32.
    width: multiplier on the growth rate and the stem's channels.
    small_input: 3^d stride-1 stem without max pooling.
  """

  num_outputs: int
  growth_rate: int = 32
  block_config: Sequence[int] = (6, 12, 24, 16)
  bn_size: int = 4
  init_features: int = 64
  compression: float = 0.5
  spatial_dims: int = 2
  dropout: float = 0.0
  dtype: Any = jnp.float32
  width: float = 1.0
  small_input: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    d, dt = self.spatial_dims, self.dtype
    growth = layers.scaled(self.growth_rate, self.width)
    features = layers.scaled(self.init_features, self.width)
    kernel, stride = (3, 1) if self.small_input else (7, 2)
    x = nn.Conv(features, (kernel,) * d, strides=(stride,) * d,
                padding=((kernel // 2, kernel // 2),) * d, use_bias=False, dtype=dt,
                name="stem_conv")(x.astype(dt))
    x = nn.relu(layers.batch_norm(train, name="stem_norm")(x)).astype(dt)
    if not self.small_input:
      x = layers.max_pool(x, d)
    for i, count in enumerate(self.block_config):
      for j in range(count):
        new = DenseLayer(growth, self.bn_size, d, dt, name=f"block{i + 1}_layer{j + 1}")(
            x, train)
        x = jnp.concatenate([x, new.astype(dt)], axis=-1)
      if i < len(self.block_config) - 1:
        out = int(x.shape[-1] * self.compression)
        x = Transition(out, d, dt, name=f"transition{i + 1}")(x, train)
    x = nn.relu(layers.batch_norm(train, name="final_norm")(x))
    x = mark_features(self, x)  # sown as intermediates/features, for Grad-CAM
    return layers.classify(x, self.num_outputs, self.dropout, train)


def densenet121(num_outputs: int, **kwargs) -> DenseNet:
  """DenseNet-121: growth 32, blocks (6, 12, 24, 16), bn_size 4, 64 stem channels."""
  return DenseNet(num_outputs, **kwargs)
