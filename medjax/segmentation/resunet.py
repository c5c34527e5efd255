"""Residual U-Net with strided-convolution downsampling (MONAI `UNet`), Flax Linen.

The structure of `monai.networks.nets.UNet` (Kerfoot et al., 2018) with its
defaults: kernel 3, up kernel 3, instance norm without affine parameters, PReLU
(one slope, init 0.25), bias in every convolution, norm -> dropout -> PReLU.
For `channels` (c_0 .. c_{n-1}), `strides` (s_0 .. s_{n-2}), `num_res_units` r:

  down_i (i < n-1): residual unit to c_i whose first conv has stride s_i: r x
      (conv -> norm -> dropout -> PReLU) + a residual conv (3^d with stride s_i
      when s_i > 1, 1^d when only the width changes, else identity);
  bottom: the same with stride 1 to c_{n-1};
  up_i: concat(skip_i, x) -> transposed 3^d conv with stride s_i (output size
      x s_i) -> norm/PReLU -> a one-conv residual unit; to c_{i-1}, and at the
      top to `num_classes` with the last conv alone (the logits).

With r = 0 each residual unit is a single conv block and the top transposed
conv is the last layer. The transposed convs run as stride-1 convs to
stride^d phases + depth-to-space (`upsample='subpixel'`, fast on CPU) or as
`nn.ConvTranspose` ('transpose'): same function, same parameters. Parameter
counts equal MONAI's for the same settings; experiments/bench/peers/
monai_unet_port.py copies torch weights in and compares outputs (~1e-6).
Every spatial size must be divisible by the product of the strides (MONAI's
own requirement: otherwise a skip and its upsampled input differ).
Images are channels-last `(B, *spatial, C)`; the output is float32 logits.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Any

import flax.linen as nn
from jax import lax
import jax.numpy as jnp
import numpy as np

from medjax.engine.errors import InputError
from medjax.segmentation import unet

NORMS = ("instance", "batch", "none")
UPSAMPLES = ("subpixel", "transpose")


def _norm(norm: str, train: bool, dtype: Any):
  """MONAI's norm layers: instance without affine, batch with it, or identity."""
  if norm == "instance":
    return nn.InstanceNorm(epsilon=1e-5, use_bias=False, use_scale=False, dtype=dtype)
  if norm == "batch":
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        dtype=dtype)
  if norm == "none":
    return lambda x: x
  raise InputError(f"config.task.model.norm: the residual U-Net takes one of {NORMS}, "
                   f"got {norm!r}")


def _phase_selection(kernel_size: int, stride: int) -> tuple[np.ndarray, int, int]:
  """S[j, q, t] = 1 where output phase q takes kernel tap t from input offset jlo + j.

  torch's transposed conv (padding p = (k - 1) // 2, output_padding s - 1) gives
  out[s*m + q] = sum_t w[t] x[m + j] over t = q + p - s*j in [0, k).
  """
  k, s, p = kernel_size, stride, (kernel_size - 1) // 2
  jlo, jhi = -(p // s), (s - 1 + p) // s
  sel = np.zeros((jhi - jlo + 1, s, k), np.float32)
  for j in range(jlo, jhi + 1):
    for q in range(s):
      if 0 <= q + p - s * j < k:
        sel[j - jlo, q, q + p - s * j] = 1.0
  return sel, jlo, jhi


class SubpixelConvTranspose(nn.Module):
  """MONAI's transposed conv (output = input x stride) as one stride-1 conv to
  stride^d phases of `features` channels, then depth-to-space: the same function
  and parameters as `nn.ConvTranspose` (kernel (*k, in, out), as for the dilated
  input), without XLA:CPU's slow weight gradient of strided transposed convs (13x
  on a 3x3 stride-2 layer of 128^2 x 32 -> 16 channels) or its 3/4 zero products."""

  features: int
  spatial_dims: int
  stride: int
  kernel_size: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    d, k, s = self.spatial_dims, self.kernel_size, self.stride
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (k,) * d + (x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    sel, jlo, jhi = _phase_selection(k, s)
    taps, offsets, phases = "tuv"[:d], "abc"[:d], "pqr"[:d]
    specs = [f"{offsets[a]}{phases[a]}{taps[a]}" for a in range(d)]
    torch_kernel = jnp.flip(kernel, tuple(range(d))).astype(self.dtype)  # tap t of torch
    combined = jnp.einsum(f"{','.join(specs)},{taps}io->{offsets}i{phases}o",
                          *[sel.astype(self.dtype)] * d, torch_kernel)
    combined = combined.reshape(sel.shape[:1] * d + (x.shape[-1], s**d * self.features))
    y = lax.conv_general_dilated(x.astype(self.dtype), combined, (1,) * d,
                                 ((-jlo, jhi),) * d,
                                 dimension_numbers=_DIMENSIONS[d])
    return unet.depth_to_space(y, d, s) + bias.astype(self.dtype)


_DIMENSIONS = {2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


class ConvUnit(nn.Module):
  """MONAI `Convolution`: (transposed) conv, then norm -> dropout -> PReLU."""

  features: int
  spatial_dims: int
  stride: int = 1
  kernel_size: int = 3
  transposed: bool = False
  conv_only: bool = False
  norm: str = "instance"
  dropout: float = 0.0
  dtype: Any = jnp.float32
  upsample: str = "subpixel"

  @nn.compact
  def __call__(self, x, train: bool):
    d, k, s = self.spatial_dims, self.kernel_size, self.stride
    pad = (k - 1) // 2
    if self.upsample not in UPSAMPLES:
      raise InputError(f"config.task.model.upsample: one of {UPSAMPLES}, got {self.upsample!r}")
    if self.transposed and self.upsample == "subpixel":
      x = SubpixelConvTranspose(self.features, d, s, k, self.dtype, name="conv")(x)
    elif self.transposed:  # torch padding p, output_padding s - 1: output = input * s
      x = nn.ConvTranspose(self.features, (k,) * d, strides=(s,) * d,
                           padding=((k - 1 - pad, k - 1 - pad + s - 1),) * d,
                           dtype=self.dtype, name="conv")(x)
    else:
      x = nn.Conv(self.features, (k,) * d, strides=(s,) * d, padding=((pad, pad),) * d,
                  dtype=self.dtype, name="conv")(x)
    if self.conv_only:
      return x
    x = _norm(self.norm, train, self.dtype)(x)
    if self.dropout > 0:
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.PReLU(negative_slope_init=0.25, param_dtype=jnp.float32, name="prelu")(x)


class ResidualUnit(nn.Module):
  """MONAI `ResidualUnit`: `subunits` ConvUnits (the first strided) + residual."""

  features: int
  spatial_dims: int
  stride: int = 1
  subunits: int = 2
  kernel_size: int = 3
  last_conv_only: bool = False
  norm: str = "instance"
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    d, k, s = self.spatial_dims, self.kernel_size, self.stride
    residual = x
    if s != 1:
      pad = (k - 1) // 2
      residual = nn.Conv(self.features, (k,) * d, strides=(s,) * d,
                         padding=((pad, pad),) * d, dtype=self.dtype, name="residual")(x)
    elif x.shape[-1] != self.features:
      residual = nn.Conv(self.features, (1,) * d, dtype=self.dtype, name="residual")(x)
    subunits = max(1, self.subunits)
    for i in range(subunits):
      x = ConvUnit(self.features, d, s if i == 0 else 1, k,
                   conv_only=self.last_conv_only and i == subunits - 1, norm=self.norm,
                   dropout=self.dropout, dtype=self.dtype, name=f"unit{i}")(x, train)
    return x + residual


class ResUNet(nn.Module):
  """MONAI-style residual U-Net returning float32 logits (B, *spatial, num_classes).

  Attributes:
    num_classes: output channels (logits).
    spatial_dims: 2 or 3.
    channels: widths, top level first (at least 2).
    strides: stride of each down level, `len(channels) - 1` values; () = all 2.
    num_res_units: convs per residual unit (0: plain conv blocks).
    norm: 'instance' (MONAI's default, no affine), 'batch' or 'none'.
    dropout: rate after each norm, 'dropout' RNG stream, train only.
    kernel_size, up_kernel_size: odd convolution sizes (MONAI: 3 and 3).
    dtype: compute dtype; parameters stay float32.
    upsample: the transposed convs as 'subpixel' (default: phases + depth-to-space,
      fast on CPU) or 'transpose' (`nn.ConvTranspose`); same function, same params.
  """

  num_classes: int
  spatial_dims: int = 2
  channels: Sequence[int] = (16, 32, 64, 128, 256)
  strides: Sequence[int] = ()
  num_res_units: int = 2
  norm: str = "instance"
  dropout: float = 0.0
  kernel_size: int = 3
  up_kernel_size: int = 3
  dtype: Any = jnp.float32
  upsample: str = "subpixel"

  def level_strides(self) -> tuple[int, ...]:
    """The strides, checked against `channels` (() -> 2 per level)."""
    levels = len(self.channels) - 1
    if levels < 1:
      raise InputError(f"config.task.model.features: the residual U-Net needs at least 2 "
                       f"levels, got {tuple(self.channels)}")
    strides = tuple(self.strides) or (2,) * levels
    if len(strides) != levels or any(s < 1 for s in strides):
      raise InputError(f"config.task.model.strides: need {levels} positive strides (one "
                       f"per level below the top of features={tuple(self.channels)}), "
                       f"got {tuple(self.strides)}")
    return strides

  def _check_size(self, spatial, strides):
    factor = math.prod(strides)
    if any(size % factor for size in spatial):
      raise InputError(
          f"residual U-Net: every spatial size must be divisible by {factor}, the product "
          f"of strides {strides}; got input size {tuple(spatial)}. Set task.patch_size "
          f"and task.sliding_window.roi to multiples of {factor}")

  @nn.compact
  def __call__(self, image, train: bool = False):
    d, r = self.spatial_dims, self.num_res_units
    if image.ndim != d + 2:
      raise ValueError(f"expected (B, *{d} spatial, C), got shape {image.shape}")
    strides = self.level_strides()
    self._check_size(image.shape[1:-1], strides)
    opts = dict(kernel_size=self.kernel_size, norm=self.norm, dropout=self.dropout,
                dtype=self.dtype)
    x, skips = image.astype(self.dtype), []
    for i, (width, stride) in enumerate(zip(self.channels, strides)):
      x = self._down(width, stride, opts, f"down_{i}")(x, train)
      skips.append(x)
    x = self._down(self.channels[-1], 1, opts, "bottom")(x, train)
    for i in reversed(range(len(strides))):
      out = self.num_classes if i == 0 else self.channels[i - 1]
      x = jnp.concatenate([skips[i], x], axis=-1)
      up_opts = dict(opts, kernel_size=self.up_kernel_size)
      x = ConvUnit(out, d, strides[i], transposed=True, conv_only=i == 0 and r == 0,
                   upsample=self.upsample, name=f"up_{i}", **up_opts)(x, train)
      if r > 0:
        x = ResidualUnit(out, d, 1, subunits=1, last_conv_only=i == 0,
                         name=f"up_{i}_res", **opts)(x, train)
    return x.astype(jnp.float32)

  def _down(self, width, stride, opts, name):
    if self.num_res_units > 0:
      return ResidualUnit(width, self.spatial_dims, stride, self.num_res_units, name=name,
                          **opts)
    return ConvUnit(width, self.spatial_dims, stride, name=name, **opts)
