"""MedMNIST .npz files: checking their keys and shapes, and reading their splits.

The official key names are `<split>_images` and `<split>_labels` for split train,
val and test; only train is required. Images are (N, *S) or (N, *S, C) uint8 with
S of `spatial_dims` axes; labels (N,) or (N, 1) are class indices, (N, K > 1) are K
binary findings. Shapes are read from the .npy headers, without loading the arrays.
"""

from __future__ import annotations

import os
import zipfile
from typing import NamedTuple

import numpy as np

from medjax.segmentation.data.errors import DataError

SPLITS = ("train", "val", "test")


class Layout(NamedTuple):
  path: str
  splits: tuple[str, ...]
  channels: int
  multi_label: bool
  num_labels: int  # classes (max label + 1), or findings


def _headers(path: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """{key: (shape, dtype)} of every array in the .npz at `path`."""
  if not path or not os.path.isfile(path):
    raise DataError(f"config.task.raw_dir={path!r}: no such .npz file")
  out = {}
  try:
    with zipfile.ZipFile(path) as archive:
      for name in archive.namelist():
        if name.endswith(".npy"):
          with archive.open(name) as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(f)
          out[name[:-4]] = (shape, dtype)
  except (zipfile.BadZipFile, ValueError, OSError) as e:
    raise DataError(f"cannot read {path} as an .npz file: {e}") from e
  return out


def _check_split(path, split, headers, spatial_dims) -> int:
  """The split's channel count; DataError naming the key on a bad shape."""
  (images, image_dtype), (labels, _) = headers[f"{split}_images"], headers[f"{split}_labels"]
  if len(images) not in (1 + spatial_dims, 2 + spatial_dims):
    raise DataError(f"{path}: {split}_images has shape {images}; expected (N, "
                    f"{', '.join('S' * spatial_dims)}[, C]) for config.task.spatial_dims="
                    f"{spatial_dims}")
  if image_dtype != np.uint8:
    raise DataError(f"{path}: {split}_images is {image_dtype}; expected uint8")
  if len(labels) not in (1, 2) or labels[0] != images[0]:
    raise DataError(f"{path}: {split}_labels has shape {labels}; expected ({images[0]},) "
                    f"or ({images[0]}, K) to match {split}_images {images}")
  channels = images[-1] if len(images) == 2 + spatial_dims else 1
  if channels not in (1, 3):
    raise DataError(f"{path}: {split}_images has {channels} channels; expected 1 or 3 "
                    f"(shape {images}; for volumes set config.task.spatial_dims=3)")
  return channels


def check_layout(path, spatial_dims: int) -> Layout:
  """The file's splits, channels and label kind; DataError naming a missing key."""
  path = os.fspath(path) if path else ""
  headers = _headers(path)
  present = [s for s in SPLITS if f"{s}_images" in headers or f"{s}_labels" in headers]
  for split in present:
    for kind in ("images", "labels"):
      if f"{split}_{kind}" not in headers:
        raise DataError(f"{path} has {split}_{'labels' if kind == 'images' else 'images'} "
                        f"but no {split}_{kind} (keys: {sorted(headers)})")
  if "train" not in present:
    raise DataError(f"{path} has no train_images / train_labels keys (keys: "
                    f"{sorted(headers)}; expected MedMNIST's <split>_images and "
                    "<split>_labels for split train [val, test])")
  channels = {s: _check_split(path, s, headers, spatial_dims) for s in present}
  if len(set(channels.values())) > 1:
    raise DataError(f"{path}: splits have different channel counts {channels}")
  label_shapes = {headers[f"{s}_labels"][0][1:] for s in present}
  if len(label_shapes) > 1:
    raise DataError(f"{path}: splits have different label shapes {sorted(label_shapes)}")
  width = (label_shapes.pop() or (1,))[0]
  with np.load(path) as data:
    values = np.concatenate([np.asarray(data[f"{s}_labels"]).reshape(-1) for s in present])
  if values.size and (values.min() < 0 or np.any(values != np.round(values))):
    raise DataError(f"{path}: labels must be non-negative integers; found "
                    f"{np.unique(values)[:8].tolist()}")
  if width > 1 and values.size and values.max() > 1:
    raise DataError(f"{path}: multi-label labels (K={width}) must be 0 or 1; found "
                    f"{np.unique(values)[:8].tolist()}")
  num_labels = width if width > 1 else int(values.max()) + 1 if values.size else 0
  return Layout(path, tuple(present), int(channels["train"]), width > 1, num_labels)


def check_classes(layout: Layout, classes) -> None:
  if len(classes) < max(layout.num_labels, 2 if not layout.multi_label else 1):
    raise DataError(f"{layout.path}: {layout.num_labels} label values but "
                    f"config.task.builder.classes names {len(classes)}: {list(classes)}")


def load_splits(path: str, spatial_dims: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{split: (images (N, *S, C) uint8, labels (N, K))} of the checked file."""
  layout = check_layout(path, spatial_dims)
  out = {}
  with np.load(path) as data:
    for split in layout.splits:
      images = np.asarray(data[f"{split}_images"])
      if images.ndim == 1 + spatial_dims:
        images = images[..., None]
      labels = np.asarray(data[f"{split}_labels"])
      out[split] = images, labels.reshape(len(labels), -1)
  return out
