"""Reading classification images from disk as uint8 arrays with a channel axis.

Every image becomes (H, W, C) uint8 with C = `channels` (1: grey, 3: RGB) and,
when `size` is given, (height, width) = `size` (bilinear). 16-bit or float
images are scaled per image from their own minimum-maximum range to 0..255.
Errors are `DataError`s naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from medjax.segmentation.data.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")


def list_images(directory: str) -> list[str]:
  """Sorted image file names (by suffix, hidden files skipped) in `directory`."""
  return sorted(n for n in os.listdir(directory)
                if n.lower().endswith(IMAGE_SUFFIXES) and not n.startswith("."))


def _to_uint8(array: np.ndarray) -> np.ndarray:
  if array.dtype == np.uint8:
    return array
  array = array.astype(np.float64)
  low, high = float(array.min()), float(array.max())
  return np.round((array - low) / max(high - low, 1e-12) * 255).astype(np.uint8)


def _channels(image: Image.Image, channels: int) -> np.ndarray:
  if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # deep grey: scale, then replicate
    grey = _to_uint8(np.asarray(image))
    return grey[..., None] if channels == 1 else np.repeat(grey[..., None], 3, -1)
  mode = "L" if channels == 1 else "RGB"
  array = np.asarray(image.convert(mode))
  return array[..., None] if channels == 1 else array


def read_image(path: str, channels: int = 1, size: Sequence[int] = (0, 0)) -> np.ndarray:
  """(H, W, channels) uint8; resized to `size` (height, width) unless it holds a 0."""
  if channels not in (1, 3):
    raise DataError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
  if not os.path.isfile(path):
    raise DataError(f"image file not found: {path}")
  try:
    with Image.open(path) as image:
      image.load()
      if all(size) and image.size != (size[1], size[0]):
        resample = Image.Resampling.BILINEAR
        if image.mode in ("I;16", "I;16B", "I;16L"):
          image = image.convert("I")
        image = image.resize((int(size[1]), int(size[0])), resample)
      return np.ascontiguousarray(_channels(image, channels))
  except DataError:
    raise
  except Exception as e:  # noqa: BLE001 -- PIL raises many types for a bad file
    raise DataError(f"cannot read image {path}: {e}") from e
