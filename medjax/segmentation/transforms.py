"""On-device augmentation of segmentation batches: pure, jit-able, explicit PRNG keys.

A batch is a dict with `image` (B, *S, C), `label` (B, *S) and `valid` (B, *S),
where S is the spatial shape ((H, W) in 2D, (X, Y, Z) in 3D); other keys pass
through. Each example gets its own random transform, applied identically to its
image, label and valid. Spatial axes are numbered as in `label`: 1..ndim-1.
Random functions have a deterministic twin taking the per-example parameters
(flip, rot90, affine, crop, gamma), except the simple intensity ones.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import ndimage

from medjax.engine.errors import InputError

Batch = dict
SPATIAL_KEYS = ("image", "label", "valid")


def _spatial_keys(batch: Batch) -> list[str]:
  return [k for k in SPATIAL_KEYS if k in batch]


def _where(cond, a, b):
  """Per-example select: `cond` (B,) broadcast over the trailing axes of a and b."""
  return jnp.where(cond.reshape(cond.shape + (1,) * (a.ndim - 1)), a, b)


def _all_spatial(batch: Batch, axes: Sequence[int] | None) -> tuple[int, ...]:
  return tuple(range(1, batch["label"].ndim)) if axes is None else tuple(axes)


def flip(batch: Batch, flips: jax.Array, axes: Sequence[int] | None = None) -> Batch:
  """Flips example b along `axes[i]` (default: every spatial axis) where `flips[b, i]`."""
  axes = _all_spatial(batch, axes)
  out = dict(batch)
  for k in _spatial_keys(batch):
    x = batch[k]
    for i, axis in enumerate(axes):
      x = _where(flips[:, i], jnp.flip(x, axis), x)
    out[k] = x
  return out


def random_flip(batch: Batch, key: jax.Array, axes: Sequence[int] | None = None) -> Batch:
  """Flips each example along each of `axes` (default: all spatial) with probability 1/2."""
  axes = _all_spatial(batch, axes)
  flips = jax.random.bernoulli(key, 0.5, (batch["label"].shape[0], len(axes)))
  return flip(batch, flips, axes)


def rot90(batch: Batch, k: jax.Array, axes: tuple[int, int] = (1, 2)) -> Batch:
  """Rotates example b by `k[b]` quarter turns in the `axes` plane (as `np.rot90`)."""
  shape = batch["label"].shape
  if shape[axes[0]] != shape[axes[1]]:
    raise ValueError(f"rot90 needs a square plane; label shape {shape}, axes {axes}")
  out = dict(batch)
  for key in _spatial_keys(batch):
    x = batch[key]
    turned = x
    for quarter in range(1, 4):
      turned = jnp.rot90(turned, 1, axes)
      x = _where(k % 4 == quarter, turned, x)
    out[key] = x
  return out


def random_rot90(batch: Batch, key: jax.Array, axes: tuple[int, int] = (1, 2)) -> Batch:
  """Rotates each example by 0, 1, 2 or 3 quarter turns, uniformly."""
  return rot90(batch, jax.random.randint(key, (batch["label"].shape[0],), 0, 4), axes)


def _plane_rotation(d: int, i: int, j: int, radians: jax.Array) -> jax.Array:
  diagonal, turn = np.zeros((d, d), np.float32), np.zeros((d, d), np.float32)
  diagonal[i, i] = diagonal[j, j] = 1
  turn[i, j], turn[j, i] = 1, -1
  return np.eye(d, dtype=np.float32) + (jnp.cos(radians) - 1) * diagonal + jnp.sin(radians) * turn


def rotation_matrix(radians: jax.Array) -> jax.Array:
  """Output -> source offsets for `affine`: (2, 2) for a scalar angle, (3, 3) =
  R_0 @ R_1 @ R_2 for angles (3,), R_a about axis a. A positive quarter turn about
  axis a equals `np.rot90(x, 1, axes=((a + 1) % 3, (a + 2) % 3))`; in 2D, `np.rot90`."""
  radians = jnp.asarray(radians, jnp.float32)
  if radians.ndim == 0:
    return _plane_rotation(2, 0, 1, radians)
  m = jnp.eye(3, dtype=jnp.float32)
  for axis in range(3):
    turn = _plane_rotation(3, (axis + 1) % 3, (axis + 2) % 3, radians[axis])
    m = jnp.sum(m[:, :, None] * turn[None], axis=1)  # elementwise: exact float32
  return m


def _affine_coords(shape: tuple[int, ...], matrix: jax.Array) -> jax.Array:
  """Source coordinates (d, *shape): centre + matrix @ (voxel - centre), elementwise
  in float32 (no matmul, so no reduced-precision dot on accelerators)."""
  d = len(shape)
  centre = jnp.asarray([(n - 1) / 2 for n in shape], jnp.float32).reshape((d,) + (1,) * d)
  grid = jnp.stack(jnp.meshgrid(*[jnp.arange(n, dtype=jnp.float32) for n in shape],
                                indexing="ij")) - centre
  m = matrix.astype(jnp.float32).reshape((d, d) + (1,) * d)
  return jnp.sum(m * grid[None], axis=1) + centre


def _resample(x: jax.Array, coords: jax.Array, order: int) -> jax.Array:
  return ndimage.map_coordinates(x, list(coords), order=order, mode="constant", cval=0)


def _affine_one(example: Batch, matrix: jax.Array) -> Batch:
  coords = _affine_coords(example["label"].shape, matrix)
  out = dict(example)
  if "image" in example:
    image = example["image"]
    channels = jax.vmap(lambda p: _resample(p, coords, 1), in_axes=-1, out_axes=-1)
    out["image"] = channels(image.astype(jnp.float32)).astype(image.dtype)
  for key in ("label", "valid"):
    if key in example:
      x = example[key]
      out[key] = _resample(x.astype(jnp.float32), coords, 0).astype(x.dtype)
  return out


def affine(batch: Batch, matrices: jax.Array) -> Batch:
  """Resamples example b at centre + matrices[b] @ (voxel - centre), any spatial dims.

  `matrices` is (B, d, d) mapping output offsets to source offsets. Image:
  (bi/tri)linear; label and valid: nearest. Voxels from outside are 0, so they
  get valid = 0. The identity matrix reproduces the input exactly.
  """
  spatial = {k: batch[k] for k in _spatial_keys(batch)}
  return {**batch, **jax.vmap(_affine_one)(spatial, matrices)}


def rotate(batch: Batch, degrees: jax.Array) -> Batch:
  """Rotates example b by `degrees[b]` (counter-clockwise) about its centre (2D only)."""
  if batch["label"].ndim != 3:
    raise ValueError(f"rotate is 2D only; label shape {batch['label'].shape}")
  return affine(batch, jax.vmap(rotation_matrix)(jnp.deg2rad(degrees)))


def random_rotate(batch: Batch, key: jax.Array, max_degrees: float) -> Batch:
  """Rotates each example by an angle uniform in [-max_degrees, max_degrees]."""
  n = batch["label"].shape[0]
  return rotate(batch, jax.random.uniform(key, (n,), minval=-max_degrees, maxval=max_degrees))


def random_affine(batch: Batch, key: jax.Array, max_degrees: float = 15.0,
                  scale: float = 0.0, probability: float = 1.0) -> Batch:
  """Rotation plus isotropic scaling, one resampling per example (2D or 3D).

  Angles (one in 2D, one per axis in 3D) are uniform in [-max_degrees,
  max_degrees]; the content is magnified by s ~ U[1 - scale, 1 + scale]. Each
  example is transformed with `probability`, else left exactly as it is.
  """
  n, d = batch["label"].shape[0], batch["label"].ndim - 1
  if d not in (2, 3):
    raise ValueError(f"random_affine needs 2 or 3 spatial axes; label shape "
                     f"{batch['label'].shape}")
  a = 1 if d == 2 else 3
  u = jax.random.uniform(key, (n, a + 2))  # one draw: fewer RNG kernels to compile
  angles = max_degrees * (2 * u[:, :a] - 1)
  s = 1 + scale * (2 * u[:, a] - 1)
  matrices = jax.vmap(rotation_matrix)(jnp.deg2rad(angles[:, 0] if d == 2 else angles))
  apply = (u[:, a + 1] < probability)[:, None, None]
  matrices = jnp.where(apply, matrices / s[:, None, None], jnp.eye(d, dtype=jnp.float32))
  return affine(batch, matrices)


def crop(batch: Batch, offsets: jax.Array, size: Sequence[int]) -> Batch:
  """Crops example b to `size` starting at `offsets[b]` (one offset per spatial axis)."""
  size = tuple(size)

  def one(x, start):
    start = tuple(start) + (0,) * (x.ndim - len(size))
    return jax.lax.dynamic_slice(x, start, size + x.shape[len(size):])

  out = dict(batch)
  for k in _spatial_keys(batch):
    out[k] = jax.vmap(one)(batch[k], offsets)
  return out


def random_crop(batch: Batch, key: jax.Array, size: Sequence[int]) -> Batch:
  """Crops each example to `size` at a uniform random offset (same for image/label/valid)."""
  spatial = batch["label"].shape[1:]
  if len(size) != len(spatial) or any(s > d for s, d in zip(size, spatial)):
    raise ValueError(f"crop size {tuple(size)} does not fit spatial shape {spatial}")
  n = batch["label"].shape[0]
  high = jnp.asarray(spatial) - jnp.asarray(size) + 1
  offsets = jax.random.randint(key, (n, len(size)), 0, high)
  return crop(batch, offsets, size)


def random_intensity(batch: Batch, key: jax.Array, scale: float, shift: float) -> Batch:
  """image * s + t per example, s ~ U[1 - scale, 1 + scale], t ~ U[-shift, shift]."""
  image = batch["image"]
  k1, k2 = jax.random.split(key)
  shape = (image.shape[0],) + (1,) * (image.ndim - 1)
  s = jax.random.uniform(k1, shape, minval=1 - scale, maxval=1 + scale)
  t = jax.random.uniform(k2, shape, minval=-shift, maxval=shift)
  return {**batch, "image": (image * s + t).astype(image.dtype)}


def gamma(batch: Batch, gammas: jax.Array) -> Batch:
  """nnU-Net's gamma: per example and channel, rescale the image to [0, 1], raise it
  to `gammas[b]`, rescale back. Examples with gamma 1 are left exactly as they are."""
  image = batch["image"].astype(jnp.float32)
  axes = tuple(range(1, image.ndim - 1))
  low = jnp.min(image, axis=axes, keepdims=True)
  span = jnp.max(image, axis=axes, keepdims=True) - low + 1e-7
  g = jnp.reshape(gammas, (-1,) + (1,) * (image.ndim - 1)).astype(jnp.float32)
  out = ((image - low) / span) ** g * span + low
  return {**batch, "image": _where(gammas == 1, image, out).astype(batch["image"].dtype)}


def random_gamma(batch: Batch, key: jax.Array, gamma_range: Sequence[float] = (0.7, 1.5),
                 probability: float = 0.3) -> Batch:
  """Gamma with `probability`; as nnU-Net, half the draws (when the range allows)
  are uniform in [low, 1), the others uniform in [max(low, 1), high]."""
  low, high = gamma_range
  n = batch["image"].shape[0]
  side, u, apply = jax.random.uniform(key, (3, n))
  below = (side < 0.5) & (jnp.asarray(low) < 1)
  above_low = jnp.maximum(low, 1.0)
  g = jnp.where(below, low + u * (1 - low), above_low + u * (high - above_low))
  return gamma(batch, jnp.where(apply < probability, g, 1.0))


def random_noise(batch: Batch, key: jax.Array, sigma_range: Sequence[float] = (0.0, 0.1),
                 probability: float = 0.1) -> Batch:
  """Adds N(0, sigma^2) noise to the image of each example with `probability`,
  sigma ~ U[sigma_range]; other examples are left exactly as they are."""
  image = batch["image"]
  n = image.shape[0]
  k_draw, k_noise = jax.random.split(key)
  u, apply = jax.random.uniform(k_draw, (2, n))
  sigma = sigma_range[0] + u * (sigma_range[1] - sigma_range[0])
  # Drawn flat: XLA:CPU compiles an N-d threefry draw several times slower.
  noise = jax.random.normal(k_noise, (image.size,)).reshape(image.shape)
  noise = noise * sigma.reshape((n,) + (1,) * (image.ndim - 1))
  noisy = (image.astype(jnp.float32) + noise).astype(image.dtype)
  return {**batch, "image": _where(apply < probability, noisy, image)}


def compose(*fns: Callable[[Batch, jax.Array], Batch]) -> Callable[[Batch, jax.Array], Batch]:
  """Chains `fn(batch, key)` augmentations, giving each its own split of the key.

  Bind options first: `compose(random_flip, partial(random_rotate, max_degrees=15))`.
  """

  def apply(batch: Batch, key: jax.Array) -> Batch:
    for fn, k in zip(fns, jax.random.split(key, len(fns))):
      batch = fn(batch, k)
    return batch

  return apply


def volume_augmentation(a, patch_size: Sequence[int] | None = None
                        ) -> Callable[[Batch, jax.Array], Batch]:
  """The 3D training augmentation from `config.task.augment` `a` (nnU-Net-like).

  Order: affine (rotate_degrees about each axis + scale, one resampling, with
  `affine_probability`), rot90 (quarter turns in the (X, Y) plane, needs a
  square plane), flip (every axis), noise (sigma ~ U[0, noise_std], with
  `noise_probability`), intensity (scale/shift), gamma (`gamma_range`, with
  `gamma_probability`). Zero or False fields are skipped. Pass the patch size to
  check rot90 here, as an InputError.
  """
  if a.rot90 and patch_size is not None and patch_size[0] != patch_size[1]:
    raise InputError(f"config.task.augment.rot90 turns the (X, Y) plane and needs equal "
                     f"patch sizes there; patch_size is {tuple(patch_size)}")
  steps = []
  if a.rotate_degrees or a.scale:
    steps.append(functools.partial(random_affine, max_degrees=a.rotate_degrees,
                                   scale=a.scale, probability=a.affine_probability))
  if a.rot90:
    steps.append(functools.partial(random_rot90, axes=(1, 2)))
  if a.flip:
    steps.append(random_flip)
  if a.noise_std and a.noise_probability:
    steps.append(functools.partial(random_noise, sigma_range=(0.0, a.noise_std),
                                   probability=a.noise_probability))
  if a.intensity_scale or a.intensity_shift:
    steps.append(functools.partial(random_intensity, scale=a.intensity_scale,
                                   shift=a.intensity_shift))
  if a.gamma_probability:
    steps.append(functools.partial(random_gamma, gamma_range=tuple(a.gamma_range),
                                   probability=a.gamma_probability))
  return compose(*steps) if steps else lambda batch, key: batch
