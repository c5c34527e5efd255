"""On-device augmentation of segmentation batches: pure, jit-able, explicit PRNG keys.

A batch is a dict with `image` (B, *S, C), `label` (B, *S) and `valid` (B, *S),
where S is the spatial shape ((H, W) in 2D, (D, H, W) in 3D); other keys pass
through. Each example gets its own random transform, applied identically to its
image, label and valid. Spatial axes are numbered as in `label`: 1..ndim-1.
Each random function has a deterministic twin taking the per-example parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax.scipy import ndimage

Batch = dict
SPATIAL_KEYS = ("image", "label", "valid")


def _spatial_keys(batch: Batch) -> list[str]:
  return [k for k in SPATIAL_KEYS if k in batch]


def _where(cond, a, b):
  """Per-example select: `cond` (B,) broadcast over the trailing axes of a and b."""
  return jnp.where(cond.reshape(cond.shape + (1,) * (a.ndim - 1)), a, b)


def flip(batch: Batch, flips: jax.Array, axes: Sequence[int] = (1, 2)) -> Batch:
  """Flips example b along `axes[i]` where `flips[b, i]` is true."""
  out = dict(batch)
  for k in _spatial_keys(batch):
    x = batch[k]
    for i, axis in enumerate(axes):
      x = _where(flips[:, i], jnp.flip(x, axis), x)
    out[k] = x
  return out


def random_flip(batch: Batch, key: jax.Array, axes: Sequence[int] = (1, 2)) -> Batch:
  """Flips each example along each of `axes` with probability 1/2."""
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


def _rotation_coords(height: int, width: int, radians: jax.Array) -> jax.Array:
  """Source (row, col) of every output pixel for a rotation about the image centre.

  Positive angles turn the content counter-clockwise, like `np.rot90`.
  """
  cy, cx = (height - 1) / 2, (width - 1) / 2
  y, x = jnp.meshgrid(jnp.arange(height) - cy, jnp.arange(width) - cx, indexing="ij")
  cos, sin = jnp.cos(radians), jnp.sin(radians)
  return jnp.stack([cos * y + sin * x + cy, -sin * y + cos * x + cx])


def _resample(plane: jax.Array, coords: jax.Array, order: int) -> jax.Array:
  return ndimage.map_coordinates(plane, list(coords), order=order, mode="constant", cval=0)


def _rotate_one(example: Batch, radians: jax.Array) -> Batch:
  h, w = example["label"].shape
  coords = _rotation_coords(h, w, radians)
  out = dict(example)
  if "image" in example:
    image = example["image"]
    planes = jax.vmap(lambda p: _resample(p, coords, 1), in_axes=-1, out_axes=-1)
    out["image"] = planes(image.astype(jnp.float32)).astype(image.dtype)
  for key in ("label", "valid"):
    if key in example:
      x = example[key]
      out[key] = _resample(x.astype(jnp.float32), coords, 0).astype(x.dtype)
  return out


def rotate(batch: Batch, degrees: jax.Array) -> Batch:
  """Rotates example b by `degrees[b]` (counter-clockwise) about its centre (2D only).

  Image: bilinear; label and valid: nearest. Pixels from outside the image are 0,
  so they get valid = 0.
  """
  if batch["label"].ndim != 3:
    raise ValueError(f"rotate is 2D only; label shape {batch['label'].shape}")
  spatial = {k: batch[k] for k in _spatial_keys(batch)}
  rotated = jax.vmap(_rotate_one)(spatial, jnp.deg2rad(degrees))
  return {**batch, **rotated}


def random_rotate(batch: Batch, key: jax.Array, max_degrees: float) -> Batch:
  """Rotates each example by an angle uniform in [-max_degrees, max_degrees]."""
  n = batch["label"].shape[0]
  return rotate(batch, jax.random.uniform(key, (n,), minval=-max_degrees, maxval=max_degrees))


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


def compose(*fns: Callable[[Batch, jax.Array], Batch]) -> Callable[[Batch, jax.Array], Batch]:
  """Chains `fn(batch, key)` augmentations, giving each its own split of the key.

  Bind options first: `compose(random_flip, partial(random_rotate, max_degrees=15))`.
  """

  def apply(batch: Batch, key: jax.Array) -> Batch:
    for fn, k in zip(fns, jax.random.split(key, len(fns))):
      batch = fn(batch, k)
    return batch

  return apply
