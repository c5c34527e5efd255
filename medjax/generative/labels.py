"""Random deformations of label maps on device: the masks of synthetic training pairs.

A generator conditioned on a label map makes an image for it, so a deformed real
mask gives a new pair whose mask is exact. `random_label_maps` draws per example
a random affine map (rotation, isotropic scale, flips, translation) and an
elastic displacement field (Gaussian-smoothed white noise, as Simard et al. 2003
and MONAI's Rand2DElastic), and resamples the map once, with nearest neighbour:
every output pixel is a pixel of the input, so the classes stay exact. Points
from outside the map take the nearest edge pixel.

Maps are (B, *S) with S the spatial shape ((H, W), or (X, Y, Z)); the maths runs
over the spatial axes generically, rotations in 2D and 3D
(`medjax.segmentation.transforms.rotation_matrix`). Pure and jit-able.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import ndimage

from medjax.segmentation import transforms


def gaussian_kernel(sigma: float) -> np.ndarray:
  """The 1D Gaussian of `sigma` pixels, truncated at 3 sigma, with unit L2 norm (so
  white noise filtered along every axis keeps unit variance)."""
  radius = max(int(math.ceil(3 * sigma)), 0)
  t = np.arange(-radius, radius + 1, dtype=np.float64)
  k = np.exp(-0.5 * (t / sigma) ** 2) if sigma > 0 else np.ones(1)
  return (k / np.sqrt(np.sum(k ** 2))).astype(np.float32)


def _filter_valid(x: jax.Array, kernel: np.ndarray, axis: int) -> jax.Array:
  """Correlates `x` with `kernel` along `axis`, 'valid' (the axis shrinks)."""
  x = jnp.moveaxis(x, axis, -1)
  shape = x.shape
  out = jax.lax.conv_general_dilated(
      x.reshape(-1, 1, shape[-1]), jnp.asarray(kernel)[None, None], (1,), "VALID",
      precision=jax.lax.Precision.HIGHEST)
  return jnp.moveaxis(out.reshape(shape[:-1] + out.shape[-1:]), -1, axis)


def smooth_noise(noise: jax.Array, alpha: float, sigma: float) -> jax.Array:
  """Displacements (B, d, *S) from uniform noise (B, d, *(S + 2r)) in [0, 1), r the
  radius of `gaussian_kernel(sigma)`: the noise, centred and scaled to unit
  variance, smoothed along every spatial axis ('valid', so no pixel sees a border),
  times `alpha`. Each displacement has mean 0 and standard deviation exactly
  `alpha` (nearly Gaussian, a sum of many uniforms, as in Simard et al.);
  neighbours at distance r correlate about exp(-r^2 / (4 sigma^2))."""
  kernel = gaussian_kernel(sigma)
  field = (noise.astype(jnp.float32) - 0.5) * np.float32(np.sqrt(12.0))
  for axis in range(2, field.ndim):
    field = _filter_valid(field, kernel, axis)
  return alpha * field


def _noise_shape(shape: Sequence[int], sigma: float) -> tuple[int, ...]:
  pad = len(gaussian_kernel(sigma)) - 1
  return (shape[0], len(shape) - 1) + tuple(s + pad for s in shape[1:])


def elastic_field(key: jax.Array, shape: Sequence[int], alpha: float,
                  sigma: float) -> jax.Array:
  """A random displacement field (B, d, *S), in pixels, for maps of `shape` (B, *S)
  (see `smooth_noise`)."""
  padded = _noise_shape(shape, sigma)
  # Drawn flat: XLA:CPU compiles an N-d threefry draw several times slower.
  return smooth_noise(jax.random.uniform(key, (math.prod(padded),)).reshape(padded),
                      alpha, sigma)


def deform(labels: jax.Array, matrices: jax.Array, shifts: jax.Array | None = None,
           displacement: jax.Array | None = None) -> jax.Array:
  """Label maps (B, *S) resampled with nearest neighbour: output pixel x of map b
  reads the input at centre + matrices[b] @ (x - centre) - shifts[b] + displacement[b, :, x].

  `matrices` (B, d, d) map output offsets to source offsets (as
  `transforms.affine`: identity leaves the map as it is; `rotation_matrix(pi/2)`
  is `np.rot90`); `shifts` (B, d) move the content by that many pixels per axis;
  `displacement` (B, d, *S) is added to the source coordinates (e.g. `elastic_field`).
  """
  labels = jnp.asarray(labels, jnp.int32)
  spatial = labels.shape[1:]
  d = len(spatial)
  # pylint: disable-next=protected-access
  coords = jax.vmap(lambda m: transforms._affine_coords(spatial, m))(matrices)
  if shifts is not None:
    coords = coords - jnp.reshape(shifts, shifts.shape + (1,) * d).astype(jnp.float32)
  if displacement is not None:
    coords = coords + displacement.astype(jnp.float32)
  resample = lambda x, c: ndimage.map_coordinates(x, list(c), order=0, mode="nearest")
  return jax.vmap(resample)(labels, coords)


def _affine_draws(d: int) -> int:
  return (1 if d == 2 else 3) + 1 + 2 * d


def affine_from_uniform(u: jax.Array, spatial: Sequence[int], max_degrees: float = 15.0,
                        scale: float = 0.1, translate: float = 0.05,
                        flip: bool = True) -> tuple[jax.Array, jax.Array]:
  """(matrices (B, d, d), shifts (B, d)) for `deform` from uniforms `u` (B, k) in
  [0, 1), k = angles (1 in 2D, 3 in 3D) + 1 + 2d, for maps of spatial shape `spatial`.

  Angles (about each axis in 3D) uniform in [-max_degrees, max_degrees]; the
  content magnified by s ~ U[1 - scale, 1 + scale]; each axis flipped with
  probability 1/2 when `flip`; shifted by U[-translate, translate] x its size.
  """
  spatial = tuple(spatial)
  d = len(spatial)
  if d not in (2, 3):
    raise ValueError(f"random label maps need 2 or 3 spatial axes; spatial shape {spatial}")
  a = 1 if d == 2 else 3
  angles = jnp.deg2rad(max_degrees * (2 * u[:, :a] - 1))
  rotations = jax.vmap(transforms.rotation_matrix)(angles[:, 0] if d == 2 else angles)
  s = 1 + scale * (2 * u[:, a] - 1)
  signs = jnp.where((u[:, a + 1:a + 1 + d] < 0.5) & flip, -1.0, 1.0)
  # rotation @ diag(signs) / s, elementwise (no reduced-precision matmul)
  matrices = rotations * signs[:, None, :] / s[:, None, None]
  shifts = translate * (2 * u[:, a + 1 + d:] - 1) * jnp.asarray(spatial, jnp.float32)
  return matrices, shifts


def random_label_maps(labels: jax.Array, key: jax.Array, max_degrees: float = 15.0,
                      scale: float = 0.1, translate: float = 0.05, elastic_alpha: float = 2.0,
                      elastic_sigma: float = 8.0, flip: bool = True) -> jax.Array:
  """Each map of `labels` (B, *S) int deformed at random: (B, *S) int32 (see the
  module docstring). `affine_from_uniform` gives the affine part; `elastic_alpha`
  (pixels, the per-axis RMS displacement; a Python 0: none) and `elastic_sigma`
  (pixels) the elastic field (`smooth_noise`). All zeros and flip=False reproduce
  the maps exactly. `elastic_sigma` must be a Python number (the kernel's size);
  the other options may be traced."""
  labels = jnp.asarray(labels, jnp.int32)
  n, d = labels.shape[0], labels.ndim - 1
  elastic = not (isinstance(elastic_alpha, (int, float)) and elastic_alpha == 0)
  padded = _noise_shape(labels.shape, elastic_sigma) if elastic else (0,)
  k = n * _affine_draws(d)
  # One flat draw for both parts: every threefry call site costs XLA:CPU ~1 s to compile.
  u = jax.random.uniform(key, (k + math.prod(padded),))
  matrices, shifts = affine_from_uniform(u[:k].reshape(n, -1), labels.shape[1:], max_degrees,
                                         scale, translate, flip)
  displacement = None
  if elastic:
    displacement = smooth_noise(u[k:].reshape(padded), elastic_alpha, elastic_sigma)
  return deform(labels, matrices, shifts, displacement)
