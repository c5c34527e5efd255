"""Field-of-view (FOV) scale normalisation for fundus-like 2D images.

Fundus cameras differ in resolution: a model trained on DRIVE (FOV ~540 px wide)
sees vessels of another width on a 999x960 image. With `task.fov_scale.enabled`,
prediction resamples each image so that its FOV diameter matches the training
images' (recorded in `<workdir>/preprocessing.json` when training starts),
predicts, and resamples the class probabilities back to the image's own size.

The FOV diameter is the width in pixels of the FOV's largest connected region
(the number of image columns it touches): fundus FOVs are often cut at the top
and bottom by the sensor, rarely at the sides. Without a FOV mask the FOV is
estimated as the pixels brighter than `threshold` times the image's maximum
(fundus backgrounds are near black).
"""

from __future__ import annotations

import json
import os

import numpy as np
from scipy import ndimage

from medjax.engine.errors import InputError

PREPROCESSING_FILE = "preprocessing.json"  # in the workdir, written before training
MAX_MEASURED = 32  # training images measured for the recorded diameter


def estimate_fov(image: np.ndarray, threshold: float = 0.1) -> np.ndarray:
  """(H, W) bool: pixels of `image` ((H, W) or (H, W, C)) above `threshold` x its
  range (over the brightest channel), holes filled."""
  image = np.asarray(image, np.float64)
  bright = image.max(-1) if image.ndim == 3 else image
  low, high = bright.min(), bright.max()
  if high <= low:
    return np.ones(bright.shape, bool)
  return ndimage.binary_fill_holes((bright - low) > threshold * (high - low))


def fov_diameter(mask: np.ndarray) -> int:
  """Width in pixels (columns touched) of the largest connected region of `mask`;
  0 for an empty mask."""
  labels, count = ndimage.label(np.asarray(mask) > 0)
  if count == 0:
    return 0
  sizes = np.bincount(labels.reshape(-1))[1:]
  largest = labels == (int(np.argmax(sizes)) + 1)
  return int(np.count_nonzero(largest.any(axis=0)))


def diameter_of(image: np.ndarray, valid: np.ndarray | None, threshold: float = 0.1) -> int:
  """The FOV diameter from the `valid` mask, or from `image` when there is no mask
  (None, or every pixel valid)."""
  if valid is not None and not np.all(np.asarray(valid) > 0):
    return fov_diameter(valid)
  return fov_diameter(estimate_fov(image, threshold))


def resize(array: np.ndarray, shape, order: int = 1) -> np.ndarray:
  """`array` (H, W) or (H, W, C) resampled to spatial `shape` (exactly), channels kept.

  `order` 1 is bilinear (images, probabilities), 0 nearest (masks); pixel areas
  are aligned (`grid_mode`), as in PIL's resize.
  """
  array = np.asarray(array)
  shape = tuple(int(s) for s in shape)
  if array.shape[:2] == shape:
    return array
  zoom = [s / n for s, n in zip(shape, array.shape[:2])] + [1.0] * (array.ndim - 2)
  dtype = array.dtype if order == 0 else np.float32
  out = ndimage.zoom(array.astype(np.float32) if order else array, zoom, order=order,
                     mode="nearest", grid_mode=True)
  if out.shape[:2] != shape:  # zoom rounds; never off here, but keep the contract
    raise AssertionError(f"resize gave {out.shape[:2]}, wanted {shape}")
  return out.astype(dtype)


def scaled_shape(shape, diameter: float, target: float) -> tuple[int, int]:
  """`shape` (H, W) scaled by target / diameter, at least 1 pixel per axis."""
  factor = target / diameter
  return tuple(max(1, int(round(n * factor))) for n in shape[:2])


def training_diameter(source, threshold: float = 0.1) -> dict:
  """{"fov_diameter": median diameter of up to MAX_MEASURED training examples,
  "num_measured": n}: the scale `fov_scale` matches at prediction."""
  count = min(len(source), MAX_MEASURED)
  values = [diameter_of(source[i]["image"], source[i]["valid"], threshold)
            for i in range(count)]
  values = [v for v in values if v > 0]
  return {"fov_diameter": float(np.median(values)) if values else 0.0,
          "num_measured": len(values)}


def write_preprocessing(workdir: str, record: dict) -> str:
  path = os.path.join(workdir, PREPROCESSING_FILE)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(record, f, indent=1)
  return path


def target_diameter(fov_config, workdir: str) -> float:
  """`fov_config.train_diameter` when set, else the workdir's recorded diameter;
  InputError when neither is there."""
  if fov_config.train_diameter > 0:
    return float(fov_config.train_diameter)
  path = os.path.join(workdir, PREPROCESSING_FILE)
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      try:
        value = float(json.load(f).get("fov_diameter", 0.0))
      except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise InputError(f"{path} is not valid: {e}") from None
    if value > 0:
      return value
  raise InputError(f"config.task.fov_scale.enabled needs the training FOV diameter: "
                   f"{path} (written when training starts) has none; set "
                   "--config.task.fov_scale.train_diameter=<pixels>")
