"""U-Net (Ronneberger et al., 2015) for 2D and 3D segmentation, Flax Linen.

One code path serves `spatial_dims` 2 and 3: images are channels-last
`(B, *spatial, C)`, kernels are `(3,) * spatial_dims`, and the network returns
float32 logits `(B, *spatial, num_classes)`.

Encoder level `i` is `convs_per_block` x (3^d conv -> norm -> ReLU) with
`features[i]` channels, followed by dropout; levels are joined by 2^d max
pooling. The decoder upsamples by 2 per level, concatenates the skip connection
and applies the same block.

Upsampling. `upsample='transpose'` is a 2^d-kernel, stride-2 `nn.ConvTranspose`.
`upsample='subpixel'` (default) computes the same function family as ordinary
matrix products: a 1^d convolution to `C * 2^d` channels, one group per output
phase, then depth-to-space (pixel shuffle). A 2x2 stride-2 transposed
convolution *is* a per-phase 1x1 convolution, so the two differ only in the
parameter layout (see tests). On CPU, XLA's weight gradient for strided
transposed convolutions is far slower than PyTorch's; the sub-pixel form avoids
it (numbers in `experiments/bench/unet_cpu.py`).

Sizes. Each spatial size must be divisible by 2**(len(features) - 1); other
sizes are zero-padded at the high end of each axis before the network and the
logits are cropped back, so any input size works (the padded border is seen as
zeros by the convolutions near the high edges).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import einops
import flax.linen as nn
import jax.numpy as jnp

from medjax.engine.errors import InputError
from medjax.segmentation import conv3d

NORMS = ("batch", "group", "instance", "none")
UPSAMPLES = ("subpixel", "transpose")


def _norm_layer(norm: str, features: int, train: bool, dtype: Any):
  """The normalisation after each convolution (identity for 'none')."""
  if norm == "batch":
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=dtype)
  if norm == "group":
    return nn.GroupNorm(num_groups=math.gcd(8, features), dtype=dtype)
  if norm == "instance":
    return nn.InstanceNorm(dtype=dtype)
  if norm == "none":
    return lambda x: x
  raise InputError(f"norm must be one of {NORMS}, got {norm!r}")


def depth_to_space(x, spatial_dims: int, factor: int = 2):
  """(B, *S, (p_1 .. p_d C)) -> (B, *(S * factor), C): phases become pixels."""
  axes = [f"s{i}" for i in range(spatial_dims)]
  phases = [f"p{i}" for i in range(spatial_dims)]
  source = f"b {' '.join(axes)} ({' '.join(phases)} c)"
  target = f"b {' '.join(f'({s} {p})' for s, p in zip(axes, phases))} c"
  return einops.rearrange(x, f"{source} -> {target}", **{p: factor for p in phases})


class ConvBlock(nn.Module):
  """`convs` x (conv -> norm -> ReLU), then dropout (train only)."""

  features: int
  spatial_dims: int = 2
  norm: str = "batch"
  dropout: float = 0.0
  convs: int = 2
  dtype: Any = jnp.float32
  conv_impl: str = "xla"

  @nn.compact
  def __call__(self, x, train: bool):
    for _ in range(self.convs):
      x = nn.Conv(self.features, (3,) * self.spatial_dims, padding="SAME",
                  use_bias=self.norm == "none", dtype=self.dtype,
                  conv_general_dilated=conv3d.conv_fn(self.conv_impl))(x)
      x = _norm_layer(self.norm, self.features, train, self.dtype)(x)
      x = nn.relu(x)
    if self.dropout > 0:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return x


class Upsample(nn.Module):
  """Learned 2x upsampling to `features` channels ('subpixel' or 'transpose')."""

  features: int
  spatial_dims: int = 2
  mode: str = "subpixel"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    d = self.spatial_dims
    if self.mode == "transpose":
      return nn.ConvTranspose(self.features, (2,) * d, strides=(2,) * d,
                              dtype=self.dtype)(x)
    if self.mode != "subpixel":
      raise InputError(f"upsample must be one of {UPSAMPLES}, got {self.mode!r}")
    # Kernel (C_in, 2^d * features): one 1x1 conv per output phase. The bias is
    # shared by the phases, as in the transposed convolution.
    x = nn.Dense(self.features * 2**d, use_bias=False, dtype=self.dtype)(x)
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return depth_to_space(x, d) + bias.astype(self.dtype)


class UNet(nn.Module):
  """U-Net returning float32 logits (B, *spatial, num_classes).

  Attributes:
    num_classes: output channels (logits, one per class).
    spatial_dims: 2 or 3.
    features: channels per level; depth = len(features).
    norm: 'batch' (uses the mutable `batch_stats` collection), 'group',
      'instance' or 'none'.
    dropout: rate after each block, 'dropout' RNG stream, train only.
    dtype: compute dtype (e.g. bfloat16); parameters stay float32.
    convs_per_block: convolutions per level.
    upsample: 'subpixel' (default, fast on CPU) or 'transpose'.
    conv_impl: 3^d convolutions as 'xla' (one lax convolution) or 'slices'
      (3D as 2D convolutions over depth taps, same maths; see conv3d.py).
    deep_supervision: with train=True, return a tuple: the full-resolution
      logits, then logits at 1/2, 1/4, ... of the input size (ceil) from the
      decoder levels above the bottleneck, each by its own 1^d conv head
      (`len(features) - 2` extra outputs, as nnU-Net). With train=False only
      the full-resolution logits, so evaluation and prediction are unchanged.
  """

  num_classes: int
  spatial_dims: int = 2
  features: Sequence[int] = (32, 64, 128, 256)
  norm: str = "batch"
  dropout: float = 0.0
  dtype: Any = jnp.float32
  convs_per_block: int = 2
  upsample: str = "subpixel"
  conv_impl: str = "xla"
  deep_supervision: bool = False

  def _block(self, features: int) -> ConvBlock:
    return ConvBlock(features, self.spatial_dims, self.norm, self.dropout,
                     self.convs_per_block, self.dtype, self.conv_impl)

  @nn.compact
  def __call__(self, image, train: bool = False):
    d = self.spatial_dims
    if image.ndim != d + 2:
      raise ValueError(f"expected (B, *{d} spatial, C), got shape {image.shape}")
    spatial = image.shape[1:-1]
    x = _pad_to_multiple(image.astype(self.dtype), 2 ** (len(self.features) - 1))
    skips = []
    for i, width in enumerate(self.features):
      if i > 0:
        x = nn.max_pool(x, (2,) * d, strides=(2,) * d)
      x = self._block(width)(x, train)
      skips.append(x)
    levels = len(self.features)
    lower = []  # decoder outputs at 1/2^(levels-2) ... 1/2 (coarsest first)
    for level, (width, skip) in enumerate(zip(self.features[-2::-1], skips[-2::-1])):
      x = Upsample(width, d, self.upsample, self.dtype)(x)
      x = self._block(width)(jnp.concatenate([skip, x], axis=-1), train)
      if self.deep_supervision and level < levels - 2:
        head = nn.Conv(self.num_classes, (1,) * d, dtype=self.dtype,
                       name=f"deep_supervision_{levels - 2 - level}")
        lower.append(_crop(head(x), spatial, 2 ** (levels - 2 - level)))
    x = _crop(nn.Conv(self.num_classes, (1,) * d, dtype=self.dtype)(x), spatial, 1)
    if self.deep_supervision and train:
      return (x, *lower[::-1])
    return x


def _crop(logits, spatial, factor: int):
  """float32 logits cropped to ceil(spatial / factor), undoing `_pad_to_multiple`."""
  crop = tuple(slice(0, -(-s // factor)) for s in spatial)
  return logits[(slice(None),) + crop].astype(jnp.float32)


def _pad_to_multiple(x, multiple: int):
  """Zero-pads the spatial axes (high end) up to a multiple of `multiple`."""
  pads = [(0, -s % multiple) for s in x.shape[1:-1]]
  if not any(hi for _, hi in pads):
    return x
  return jnp.pad(x, [(0, 0)] + pads + [(0, 0)])
