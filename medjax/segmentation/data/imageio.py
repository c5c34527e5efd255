"""Reading raw 2D images and masks from disk, with errors that name the files.

TIFF goes through tifffile (dtype kept, e.g. int16 CT numbers), falling back to
PIL for codecs tifffile lacks (e.g. LZW without `imagecodecs`); GIF, PNG, JPEG and
BMP go through PIL. Masks are label images: {0, 255} binary masks become {0, 1},
other small integer labels are kept.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image
import tifffile

from medjax.segmentation.data.errors import DataError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".gif", ".jpg", ".jpeg", ".bmp")


def _read_pil(path: str) -> np.ndarray:
  with Image.open(path) as im:
    if im.mode == "P":  # palette: read the colours, not the palette indices
      im = im.convert("RGB" if _palette_has_colour(im) else "L")
    return np.array(im)


def _palette_has_colour(im: Image.Image) -> bool:
  rgb = np.asarray(im.convert("RGB"))
  return not (np.array_equal(rgb[..., 0], rgb[..., 1]) and
              np.array_equal(rgb[..., 0], rgb[..., 2]))


def read_image(path: str) -> np.ndarray:
  """Reads one 2D image as (H, W) or (H, W, C), keeping its dtype."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(f"image file not found: {path}")
  errors = []
  if path.lower().endswith((".tif", ".tiff")):
    try:
      return np.asarray(tifffile.imread(path))
    except Exception as e:  # noqa: BLE001 -- e.g. a codec tifffile lacks; try PIL
      errors.append(f"tifffile: {e}")
  try:
    return _read_pil(path)
  except Exception as e:  # noqa: BLE001
    errors.append(f"PIL: {e}")
  raise DataError(f"cannot read image {path}: {'; '.join(errors)}")


def read_mask(path: str) -> np.ndarray:
  """Reads a label mask as (H, W) uint8; {0, 255} becomes {0, 1}."""
  mask = read_image(path)
  if mask.ndim == 3:  # a grey mask saved as RGB(A): all colour channels equal
    colours = range(1, min(3, mask.shape[-1]))
    if not all(np.array_equal(mask[..., 0], mask[..., c]) for c in colours):
      raise DataError(f"mask {path} has colour channels; expected one label per pixel")
    mask = mask[..., 0]
  if mask.ndim != 2:
    raise DataError(f"mask {path} has shape {mask.shape}; expected (H, W)")
  values = np.unique(mask)
  if values.min() < 0 or values.max() > 255 or not np.all(values == np.round(values)):
    raise DataError(f"mask {path} has values {values[:8]}...; expected integer labels 0..255")
  if set(values.tolist()) <= {0, 255}:
    mask = mask // 255
  return mask.astype(np.uint8)


def read_binary(path: str) -> np.ndarray:
  """Reads a validity (e.g. field-of-view) mask as (H, W) uint8 in {0, 1}: nonzero is 1."""
  return (read_mask(path) > 0).astype(np.uint8)


def with_channel_axis(image: np.ndarray, path: str) -> np.ndarray:
  """(H, W) -> (H, W, 1); (H, W, C) kept; anything else is a DataError."""
  if image.ndim == 2:
    return image[..., None]
  if image.ndim != 3:
    raise DataError(f"image {path} has shape {image.shape}; expected (H, W) or (H, W, C)")
  return image


def check_same_size(image: np.ndarray, image_path: str, other: np.ndarray,
                    other_path: str) -> None:
  """Raises DataError unless `image` and `other` have the same height and width."""
  if image.shape[:2] != other.shape[:2]:
    raise DataError(f"{other_path} has size {other.shape[:2]} but its image {image_path} "
                    f"has size {image.shape[:2]}")


def require_dir(path: str, expected: str) -> str:
  """Returns `path` if it is a directory, else raises naming what it should hold."""
  if not os.path.isdir(path):
    raise DataError(f"directory not found: {path} (expected it to hold {expected})")
  return path


def list_images(directory: str) -> list[str]:
  """Sorted image file names (by suffix) in `directory`; DataError if there are none."""
  names = sorted(n for n in os.listdir(directory)
                 if n.lower().endswith(IMAGE_SUFFIXES) and not n.startswith("."))
  if not names:
    raise DataError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {directory}")
  return names
