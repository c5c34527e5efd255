"""Training patches from whole volumes, with foreground oversampling (as nnU-Net).

Host-side numpy, deterministic given a `np.random.Generator`. Works for any
number of spatial axes (the patch size sets it); images carry channels last.

A patch may extend past the volume (small volumes, or a patch placed near an
edge): those voxels are image 0, label 0 and valid 0, so losses can ignore them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medjax.engine.errors import InputError


def class_locations(label: np.ndarray, num_classes: int, max_per_class: int = 10000,
                    rng: np.random.Generator | None = None) -> dict[int, np.ndarray]:
  """Voxel coordinates of each foreground class present in `label`.

  Returns {class: (n, ndim) int64} for classes 1..num_classes-1 that occur
  (absent classes are left out); a class with more than `max_per_class` voxels
  keeps a uniform subsample without replacement (`rng`, default seed 0), as
  nnU-Net precomputes per case.
  """
  rng = np.random.default_rng(0) if rng is None else rng
  out = {}
  for k in range(1, num_classes):
    coords = np.argwhere(label == k)
    if len(coords) > max_per_class:
      coords = coords[np.sort(rng.choice(len(coords), max_per_class, replace=False))]
    if len(coords):
      out[k] = coords
  return out


def extract(image: np.ndarray, label: np.ndarray, start: Sequence[int],
            patch_size: Sequence[int]) -> dict[str, np.ndarray]:
  """The patch with lower corner `start` (may be negative or past the end), zero-padded.

  Returns image (*patch_size, C) float32, label (*patch_size) int32 and valid
  (*patch_size) float32 (1 where the patch lies inside the volume).
  """
  patch_size = tuple(int(p) for p in patch_size)
  out_image = np.zeros(patch_size + image.shape[len(patch_size):], np.float32)
  out_label = np.zeros(patch_size, np.int32)
  valid = np.zeros(patch_size, np.float32)
  src, dst = [], []
  for s, p, n in zip(start, patch_size, label.shape):
    lo, hi = max(int(s), 0), min(int(s) + p, n)
    if hi <= lo:  # no overlap: an all-padding patch
      return {"image": out_image, "label": out_label, "valid": valid}
    src.append(slice(lo, hi))
    dst.append(slice(lo - int(s), hi - int(s)))
  src, dst = tuple(src), tuple(dst)
  out_image[dst] = image[src]
  out_label[dst] = label[src]
  valid[dst] = 1.0
  return {"image": out_image, "label": out_label, "valid": valid}


def start_range(shape: Sequence[int], patch_size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
  """Inclusive (low, high) lower corners: inside the volume, or (when the volume is
  smaller than the patch) any placement of the whole volume inside the patch."""
  shape, patch = np.asarray(shape), np.asarray(patch_size)
  return np.minimum(0, shape - patch), np.maximum(0, shape - patch)


def sample_patch(image: np.ndarray, label: np.ndarray, patch_size: Sequence[int],
                 rng: np.random.Generator, foreground_fraction: float = 0.33,
                 locations: dict[int, np.ndarray] | None = None) -> dict[str, np.ndarray]:
  """One random patch of `image` (*S, C) and `label` (*S) (see `extract` for the output).

  With probability `foreground_fraction` (and if the case has foreground) the
  patch contains a voxel of a foreground class chosen uniformly among those
  present (`locations`, from `class_locations`; computed here if None, with
  classes up to label.max()), at a uniform position inside the patch; the corner
  is then clipped to `start_range` (which keeps the voxel inside). Otherwise
  the corner is uniform over `start_range`.
  """
  patch_size = tuple(int(p) for p in patch_size)
  if len(patch_size) != label.ndim or image.shape[:label.ndim] != label.shape:
    raise ValueError(f"patch size {patch_size}, image {image.shape} and label "
                     f"{label.shape} do not agree")
  if not 0.0 <= foreground_fraction <= 1.0:
    raise InputError(f"foreground_fraction must be in [0, 1], got {foreground_fraction}")
  low, high = start_range(label.shape, patch_size)
  want_foreground = rng.random() < foreground_fraction
  if want_foreground and locations is None:
    locations = class_locations(label, int(label.max()) + 1, rng=rng)
  classes = sorted(k for k, v in (locations or {}).items() if len(v))
  if want_foreground and classes:
    coords = locations[classes[rng.integers(len(classes))]]
    voxel = coords[rng.integers(len(coords))]
    start = voxel - rng.integers(0, np.asarray(patch_size))
    start = np.clip(start, low, high)
  else:
    start = rng.integers(low, high + 1)
  return extract(image, label, start, patch_size)
