"""Intensity normalisation of volumes (nnU-Net's schemes).

- "mri": per volume and per channel, (x - mean) / std. MR intensities are in
  arbitrary units (the MSD hippocampus files range from uint8 with maximum 112
  to float32 with maximum 1.7e6), so each scan is standardised on its own.
  With a `mask` (e.g. the non-zero region of a skull-stripped scan, nnU-Net's
  `use_mask_for_norm`), mean and std come from the masked voxels and voxels
  outside the mask are set to 0; without one, every voxel counts.
- "ct": Hounsfield units mean the same in every scan, so dataset statistics
  are used: clip to the foreground's [0.5, 99.5] percentiles, then
  (x - mean) / std with the foreground mean and std (`foreground_stats`).
- "none": cast to float32.

std is floored at 1e-8, so constant volumes give zeros, never NaN.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from medjax.engine.errors import InputError
from medjax.segmentation.data.errors import DataError

SCHEMES = ("mri", "ct", "none")
_EPS = 1e-8
STAT_KEYS = ("percentile_00_5", "percentile_99_5", "mean", "std")



def _per_channel(value, channels: int, key: str) -> np.ndarray:
  """A scalar or one value per channel, as a (C,) float64 array."""
  value = np.atleast_1d(np.asarray(value, np.float64))
  if value.shape == (1,):
    value = np.repeat(value, channels)
  if value.shape != (channels,):
    raise InputError(f"CT statistics {key!r} have {value.size} values for {channels} channels")
  return value


def _zscore_mri(image: np.ndarray, mask) -> np.ndarray:
  out = np.empty(image.shape, np.float32)
  for c in range(image.shape[-1]):
    x = image[..., c].astype(np.float64)
    values = x if mask is None else x[mask]
    if values.size == 0:
      out[..., c] = 0.0
      continue
    z = (x - values.mean()) / max(values.std(), _EPS)
    out[..., c] = z if mask is None else np.where(mask, z, 0.0)
  return out


def _zscore_ct(image: np.ndarray, stats) -> np.ndarray:
  if not stats or any(k not in stats for k in STAT_KEYS):
    raise InputError(f"'ct' normalisation needs dataset statistics with keys {STAT_KEYS} "
                     f"(intensity.foreground_stats), got {sorted(stats or {})}")
  c = image.shape[-1]
  lo, hi, mean, std = (_per_channel(stats[k], c, k) for k in STAT_KEYS)
  x = np.clip(image.astype(np.float64), lo, hi)
  return ((x - mean) / np.maximum(std, _EPS)).astype(np.float32)


def normalise(image: np.ndarray, scheme: str, stats: dict | None = None,
              mask: np.ndarray | None = None) -> np.ndarray:
  """Normalised float32 copy of `image` (x, y, z, C) (or (x, y, z)); see the module doc.

  Args:
    image: voxels, channels last.
    scheme: "mri", "ct" or "none".
    stats: for "ct", `foreground_stats`'s dict (scalars or one value per channel).
    mask: for "mri", optional (x, y, z) bool array of the voxels to standardise over.
  """
  image = np.asarray(image)
  squeeze = image.ndim == 3
  if squeeze:
    image = image[..., None]
  if scheme == "mri":
    out = _zscore_mri(image, None if mask is None else np.asarray(mask, bool))
  elif scheme == "ct":
    out = _zscore_ct(image, stats)
  elif scheme == "none":
    out = image.astype(np.float32)
  else:
    raise InputError(f"normalisation must be one of {SCHEMES}, got {scheme!r}")
  return out[..., 0] if squeeze else out


def _as_array(x) -> np.ndarray:
  return np.asarray(getattr(x, "array", x))


def sample_foreground(image, label, max_voxels: int, rng: np.random.Generator) -> np.ndarray:
  """Up to `max_voxels` (drawn without replacement) label > 0 voxels of one case, (n, C)."""
  image, label = _as_array(image), _as_array(label)
  if image.ndim == 3:
    image = image[..., None]
  if image.shape[:3] != label.shape:
    raise DataError(f"image shape {image.shape} and label shape {label.shape} differ")
  values = image[label > 0]
  if len(values) > max_voxels:
    values = values[rng.choice(len(values), max_voxels, replace=False)]
  return values.astype(np.float64)


def summarise(samples: Iterable[np.ndarray]) -> dict:
  """`foreground_stats`'s dict from per-case (n, C) samples."""
  samples = [s for s in samples if len(s)]
  if not samples:
    raise DataError("no foreground (label > 0) voxels to compute intensity statistics from")
  v = np.concatenate(samples, axis=0)
  as_list = lambda a: [float(x) for x in a]  # noqa: E731
  return {"mean": as_list(v.mean(0)), "std": as_list(v.std(0)), "min": as_list(v.min(0)),
          "max": as_list(v.max(0)), "median": as_list(np.median(v, 0)),
          "percentile_00_5": as_list(np.percentile(v, 0.5, axis=0)),
          "percentile_99_5": as_list(np.percentile(v, 99.5, axis=0)), "voxels": int(len(v))}


def foreground_stats(images: Iterable, labels: Iterable, max_voxels_per_case: int = 10000,
                     rng: np.random.Generator | None = None) -> dict:
  """Intensity statistics of labelled (label > 0) voxels over a dataset.

  Up to `max_voxels_per_case` foreground voxels are drawn (without replacement)
  from each case, so large cases do not dominate and memory stays bounded.
  Images are (X, Y, Z[, C]) arrays or `Volume`s; labels are on the same grid.

  Returns:
    dict of lists, one value per channel: mean, std, min, max, median,
    percentile_00_5, percentile_99_5; plus "voxels" (how many were sampled).
  """
  rng = np.random.default_rng(0) if rng is None else rng
  return summarise(sample_foreground(image, label, max_voxels_per_case, rng)
                   for image, label in zip(images, labels))
