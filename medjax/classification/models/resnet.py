"""ResNet-18 / ResNet-50 (He et al., 2016) for 2D and 3D images, torchvision's layout.

Stem: 7^d convolution, stride 2, 64 channels, BatchNorm, ReLU, 3^d max pool stride
2. With `small_input=True` (MedMNIST-sized inputs such as 28^3) the stem is a 3^d
convolution, stride 1, without max pooling, as MedMNIST's own ResNets. Then four
stages of BasicBlocks (ResNet-18: 2, 2, 2, 2) or Bottlenecks (ResNet-50: 3, 4, 6,
3; the stride sits on the 3^d convolution, "v1.5") with 64, 128, 256, 512 base
channels, stride 2 from the second stage on, and a 1^d convolution + BatchNorm
shortcut where the shape changes. The last stage's output is sown as
`intermediates/features` (for Grad-CAM), then global average pooling, dropout
and the dense head. In 2D with 3 input channels and 1000 outputs the parameter
counts are torchvision's (11,689,512 and 25,557,032).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from medjax.classification.models import layers
from medjax.segmentation import conv3d
from medjax.explain.gradcam import mark_features


def _conv(features: int, kernel: int, stride: int, spatial_dims: int, dtype, name=None,
          impl: str = "xla"):
  """Bias-free convolution with torchvision's padding (kernel // 2); `impl` as in
  `medjax.segmentation.conv3d` ('slices': 3D as 2D convolutions, faster on the CPU)."""
  return nn.Conv(features, (kernel,) * spatial_dims, strides=(stride,) * spatial_dims,
                 padding=((kernel // 2, kernel // 2),) * spatial_dims, use_bias=False,
                 dtype=dtype, name=name, conv_general_dilated=conv3d.conv_fn(impl))


class BasicBlock(nn.Module):
  """Two 3^d convolutions with a residual connection (expansion 1)."""

  features: int
  stride: int = 1
  spatial_dims: int = 2
  dtype: Any = jnp.float32
  conv_impl: str = "xla"

  @nn.compact
  def __call__(self, x, train: bool):
    d, dt, impl = self.spatial_dims, self.dtype, self.conv_impl
    y = _conv(self.features, 3, self.stride, d, dt, impl=impl)(x)
    y = nn.relu(layers.batch_norm(train)(y)).astype(dt)
    y = _conv(self.features, 3, 1, d, dt, impl=impl)(y)
    y = layers.batch_norm(train)(y)
    shortcut = _shortcut(x, self.features, self.stride, d, dt, train, impl)
    return nn.relu(y + shortcut).astype(dt)


class Bottleneck(nn.Module):
  """1^d reduce, 3^d (strided), 1^d expand to 4x `features`, residual connection."""

  features: int
  stride: int = 1
  spatial_dims: int = 2
  dtype: Any = jnp.float32
  conv_impl: str = "xla"

  @nn.compact
  def __call__(self, x, train: bool):
    d, dt, impl = self.spatial_dims, self.dtype, self.conv_impl
    y = _conv(self.features, 1, 1, d, dt, impl=impl)(x)
    y = nn.relu(layers.batch_norm(train)(y)).astype(dt)
    y = _conv(self.features, 3, self.stride, d, dt, impl=impl)(y)
    y = nn.relu(layers.batch_norm(train)(y)).astype(dt)
    y = _conv(self.features * 4, 1, 1, d, dt, impl=impl)(y)
    y = layers.batch_norm(train)(y)
    out = self.features * 4
    return nn.relu(y + _shortcut(x, out, self.stride, d, dt, train, impl)).astype(dt)


def _shortcut(x, features: int, stride: int, spatial_dims: int, dtype, train: bool,
              impl: str = "xla"):
  """Identity, or 1^d conv + BatchNorm (float32) when stride or channels change."""
  if stride == 1 and x.shape[-1] == features:
    return x.astype(jnp.float32)
  x = _conv(features, 1, stride, spatial_dims, dtype, name="shortcut_conv", impl=impl)(x)
  return layers.batch_norm(train, name="shortcut_norm")(x)


class ResNet(nn.Module):
  """ResNet classifier returning float32 logits (B, num_outputs).

  Attributes:
    num_outputs: logits per image (classes, or findings for multi-label).
    block: `BasicBlock` or `Bottleneck`.
    stage_sizes: blocks per stage, e.g. (2, 2, 2, 2).
    spatial_dims: 2 or 3; images are (B, *spatial, C) channels-last.
    dropout: rate before the dense head ('dropout' RNG stream, train only).
    dtype: compute dtype of the convolutions (e.g. bfloat16); parameters,
      BatchNorm and the head stay float32.
    width: multiplier on every channel count (1.0 = the published network).
    small_input: 3^d stride-1 stem without max pooling (inputs of ~28-64 pixels).
    conv_impl: 'xla' or 'slices' (3D convolutions as 2D ones: much faster on the CPU,
      strided ones most; same parameters), see `medjax.segmentation.conv3d`.
  """

  num_outputs: int
  block: Any = BasicBlock
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  spatial_dims: int = 2
  dropout: float = 0.0
  dtype: Any = jnp.float32
  width: float = 1.0
  small_input: bool = False
  conv_impl: str = "xla"

  @nn.compact
  def __call__(self, x, train: bool = False):
    d, dt, impl = self.spatial_dims, self.dtype, self.conv_impl
    x = x.astype(dt)
    stem = layers.scaled(64, self.width)
    if self.small_input:
      x = _conv(stem, 3, 1, d, dt, name="stem_conv", impl=impl)(x)
    else:
      x = _conv(stem, 7, 2, d, dt, name="stem_conv", impl=impl)(x)
    x = nn.relu(layers.batch_norm(train, name="stem_norm")(x)).astype(dt)
    if not self.small_input:
      x = layers.max_pool(x, d)
    for i, blocks in enumerate(self.stage_sizes):
      features = layers.scaled(64 * 2**i, self.width)
      for j in range(blocks):
        stride = 2 if i > 0 and j == 0 else 1
        x = self.block(features, stride, d, dt, impl,
                       name=f"stage{i + 1}_block{j + 1}")(x, train)
    x = mark_features(self, x)  # sown as intermediates/features, for Grad-CAM
    return layers.classify(x, self.num_outputs, self.dropout, train)


def resnet18(num_outputs: int, **kwargs) -> ResNet:
  """ResNet-18: BasicBlocks (2, 2, 2, 2)."""
  return ResNet(num_outputs, BasicBlock, (2, 2, 2, 2), **kwargs)


def resnet50(num_outputs: int, **kwargs) -> ResNet:
  """ResNet-50: Bottlenecks (3, 4, 6, 3)."""
  return ResNet(num_outputs, Bottleneck, (3, 4, 6, 3), **kwargs)
