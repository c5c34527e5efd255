"""Finding image / mask (/ validity mask) file pairs in raw-data folders."""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

import numpy as np

from medjax.segmentation.data import imageio
from medjax.segmentation.data.errors import DataError, raise_all

# A mask matches an image when its stem is the image stem, optionally followed by one
# of these suffixes (e.g. `case1.png` <- `case1.png`, `case1_mask.png`, `case1_gt.gif`).
MASK_SUFFIXES = ("", "_mask", "_masks", "_seg", "_label", "_labels", "_gt", "_manual1")


class Pair(NamedTuple):
  """The files of one example; `valid` is None when every pixel counts."""
  id: str
  image: str
  mask: str
  valid: str | None = None


def _stem(name: str) -> str:
  return os.path.splitext(name)[0]


def match_by_stem(image_name: str, candidates: dict[str, str], directory: str) -> str:
  """The one file in `candidates` (stem -> name) matching `image_name` by MASK_SUFFIXES."""
  stem = _stem(image_name)
  found = [candidates[stem + s] for s in MASK_SUFFIXES if stem + s in candidates]
  if not found:
    raise DataError(f"no file in {directory} matches image {image_name} (looked for stem "
                    f"{stem!r} + one of {MASK_SUFFIXES})")
  if len(found) > 1:
    raise DataError(f"image {image_name} matches several files in {directory}: {found}")
  return os.path.join(directory, found[0])


def match_folder(image_dir: str, mask_dir: str,
                 valid_dir: str | None = None) -> tuple[list[Pair], list[str]]:
  """Pairs every image in `image_dir` with its mask (and validity mask) by file stem.

  Returns the pairs and one message per image without exactly one match, so that
  all of them can be reported at once.
  """
  imageio.require_dir(image_dir, "the images")
  imageio.require_dir(mask_dir, f"one mask per image in {image_dir}")
  masks = {_stem(n): n for n in imageio.list_images(mask_dir)}
  valids = {_stem(n): n for n in imageio.list_images(valid_dir)} if valid_dir else {}
  pairs, problems = [], []
  for name in imageio.list_images(image_dir):
    try:
      valid = match_by_stem(name, valids, valid_dir) if valid_dir else None
      pairs.append(Pair(_stem(name), os.path.join(image_dir, name),
                        match_by_stem(name, masks, mask_dir), valid))
    except DataError as e:
      problems.append(str(e))
  return pairs, problems


def pair_folder(image_dir: str, mask_dir: str, valid_dir: str | None = None) -> list[Pair]:
  """`match_folder`'s pairs; one DataError naming every unmatched image if there are any."""
  pairs, problems = match_folder(image_dir, mask_dir, valid_dir)
  raise_all(problems, image_dir)
  return pairs


def cast_image(image: np.ndarray, dtype, path: str) -> np.ndarray:
  """`image` as `dtype` if no value changes, else DataError naming `path`."""
  dtype = np.dtype(dtype)
  if image.dtype == dtype:
    return image
  cast = image.astype(dtype)
  if not np.array_equal(cast, image):
    raise DataError(f"image {path} ({image.dtype}) does not fit {dtype} without loss")
  return cast


def _read_image(path: str, dtype) -> np.ndarray:
  return cast_image(imageio.with_channel_axis(imageio.read_image(path), path), dtype, path)


def read_pair(pair: Pair, dtype, read_image=None) -> tuple[dict, list[str]]:
  """The files of `pair` that could be read, and one message per file that could not
  be (unreadable, wrong shape, lossy dtype, or a size other than its image's).
  `read_image` (path -> array) replaces the cast to `dtype` (e.g. raw images)."""
  readers = {"image": read_image or (lambda p: _read_image(p, dtype)),
             "mask": imageio.read_mask, "valid": imageio.read_binary}
  arrays, problems = {}, []
  for key, path in (("image", pair.image), ("mask", pair.mask), ("valid", pair.valid)):
    if path is not None:
      try:
        arrays[key] = readers[key](path)
      except DataError as e:
        problems.append(str(e))
  for key, path in (("mask", pair.mask), ("valid", pair.valid)):
    if "image" in arrays and key in arrays:
      try:
        imageio.check_same_size(arrays["image"], pair.image, arrays[key], path)
      except DataError as e:
        problems.append(str(e))
  return arrays, problems


def load_pair(pair: Pair, dtype) -> dict:
  """Reads one example: image (H, W, C) `dtype`, mask and valid (H, W) uint8, id."""
  arrays, problems = read_pair(pair, dtype)
  if problems:
    raise DataError("; ".join(problems))
  if pair.valid is None:
    arrays["valid"] = np.ones(arrays["mask"].shape, np.uint8)
  return {"image": arrays["image"], "mask": arrays["mask"], "valid": arrays["valid"],
          "id": pair.id}


def check_pairs(pairs: list[Pair], dtype, channels: int) -> list[str]:
  """Reads every pair; one message per bad file (see `read_pair`) or wrong channel count."""
  problems = []
  for pair in pairs:
    arrays, pair_problems = read_pair(pair, dtype)
    problems += pair_problems
    if "image" in arrays and arrays["image"].shape[-1] != channels:
      problems.append(f"image {pair.image} has {arrays['image'].shape[-1]} channels; "
                      f"the others have {channels}")
  return problems


def fingerprint(root: str, *options) -> str:
  """Short hash of `root`'s absolute path, its files' names, sizes and mtimes, and `options`.

  Raw-data builders name their config by it, so a changed or different raw folder
  never reuses a stale preparation in the same `data_dir`.
  """
  root = os.path.abspath(root)
  h = hashlib.sha1(repr((root, options)).encode())
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for name in sorted(filenames):
      st = os.stat(os.path.join(dirpath, name))
      h.update(repr((os.path.relpath(os.path.join(dirpath, name), root), st.st_size,
                     st.st_mtime_ns)).encode())
  return h.hexdigest()[:12]
