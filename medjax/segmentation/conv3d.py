"""3D convolution as a sum of 2D convolutions over the kernel's depth taps.

`conv_slices` is a drop-in for `lax.conv_general_dilated` (pass it to
`nn.Conv(conv_general_dilated=...)`, so parameters keep nn.Conv's names and
shapes): for a 3D channels-last convolution with unit dilations and strides
(s_d, s_h, s_w) it computes

  y[:, z] = sum_t conv2d(x_padded[:, s_d z + t], kernel[t], strides=(s_h, s_w))

with the depth axis folded into the batch, i.e. the same sum of products in a
different order (float32 results agree to rounding). Any other convolution
falls back to `lax.conv_general_dilated`. Strided 3D convolutions gain most: XLA:CPU's
gradient of one (an input-dilated 3D convolution) is orders of magnitude slower than
the strided 2D ones it becomes here.

Why: XLA:CPU's 2D convolutions are faster than its 3D ones, provided the 2D
weight gradients go to Eigen, as medjax's default CPU flag
(`--xla_cpu_experimental_ynn_fusion_type=-individual_convolution`, set by
`medjax.engine.runtime.configure_xla`) makes them; without it they go to
YNNPACK, ~13x slower on that convolution, and 'slices' loses its lead. A 3D
U-Net train step: experiments/bench/unet3d_cpu.py. Untested on GPU (cuDNN has
native 3D kernels: keep 'xla' there).
"""

from __future__ import annotations

from jax import lax
import jax.numpy as jnp

from medjax.engine.errors import InputError

CONV_IMPLS = ("xla", "slices")  # and "auto", resolved by `resolve`
_NDHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 4, 1, 2, 3), rhs_spec=(4, 3, 0, 1, 2),
                                  out_spec=(0, 4, 1, 2, 3))
_NHWC = ("NHWC", "HWIO", "NHWC")


def _is_unit(values) -> bool:
  return values is None or all(v == 1 for v in values)


def conv_slices(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
  """`lax.conv_general_dilated`, with 3D NDHWC / DHWIO convolutions as 2D ones."""
  if (lhs.ndim != 5 or feature_group_count != 1 or kwargs
      or not (_is_unit(lhs_dilation) and _is_unit(rhs_dilation))
      or lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) != _NDHWC):
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    precision=precision, **kwargs)
  strides = tuple(window_strides) if window_strides is not None else (1, 1, 1)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:4], rhs.shape[:3], strides, padding)
  (d_lo, d_hi), *hw_padding = padding
  x = jnp.pad(lhs, ((0, 0), (d_lo, d_hi), (0, 0), (0, 0), (0, 0)))
  b, taps, step = lhs.shape[0], rhs.shape[0], strides[0]
  depth = (x.shape[1] - taps) // step + 1
  out = None
  for t in range(taps):
    xs = x[:, t:t + step * (depth - 1) + 1:step].reshape(b * depth, *x.shape[2:])
    y = lax.conv_general_dilated(xs, rhs[t], strides[1:], hw_padding,
                                 dimension_numbers=_NHWC, precision=precision)
    out = y if out is None else out + y
  return out.reshape(b, depth, *out.shape[1:])


def resolve(impl: str) -> str:
  """"auto": 3D convolutions as 2D slices on the CPU (same maths, faster with the CPU
  flag of `engine.runtime`), one XLA convolution on accelerators (cuDNN is 3D)."""
  if impl != "auto":
    return impl
  import jax  # pylint: disable=import-outside-toplevel
  return "slices" if jax.default_backend() == "cpu" else "xla"


def conv_fn(impl: str):
  """The `conv_general_dilated` for `nn.Conv` (None: Flax's default)."""
  if impl == "xla":
    return None
  if impl == "slices":
    return conv_slices
  raise InputError(f"conv_impl must be one of {CONV_IMPLS}, got {impl!r}")
