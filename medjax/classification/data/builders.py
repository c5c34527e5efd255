"""TFDS builders for image classification, written as array_record (read without TF).

Every example is `{"image": (*S, C) uint8, "label": int64 class index, "id": text}`
for single-label data, or `{"image", "labels": (K,) int8 codes, "id"}` for
multi-label data (codes: 1, 0, -1 uncertain, -2 missing; see `labels.py`). S is
(H, W) or (D, H, W). The builder's metadata (`metadata.json`) holds the class
names, `multi_label`, the label counts and the patient groups of each split.

Raw data are a builder keyword (`raw_dir=`: a folder, an .npz or a .csv file);
the config is named by a hash of its path, files, sizes, mtimes and options, so a
changed source is never read from a stale preparation. Every file is read before
anything is written: one DataError lists every bad file, key or cell.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import tensorflow_datasets as tfds

from medjax.classification.data import images, labels as labels_lib, shapes, splits
from medjax.classification.data import npz
from medjax.engine import datasets
from medjax.segmentation.data.errors import DataError, raise_all
from medjax.segmentation.data.pairing import fingerprint

SPLIT_NAMES = ("train", "val", "test")


class Item(NamedTuple):
  """One example before reading: `source` is a file path or an array index."""
  id: str
  source: Any
  label: Any  # class index, or (K,) int8 codes
  group: str


def class_features(spatial_dims: int, channels: int, num_labels: int):
  """zlib-compressed uint8 images; a class index, or K label codes when multi-label."""
  features = {"image": tfds.features.Tensor(shape=(None,) * spatial_dims + (channels,),
                                            dtype=np.uint8, encoding="zlib"),
              "id": tfds.features.Text()}
  if num_labels:
    features["labels"] = tfds.features.Tensor(shape=(num_labels,), dtype=np.int8)
  else:
    features["label"] = tfds.features.Tensor(shape=(), dtype=np.int64)
  return tfds.features.FeaturesDict(features)


@dataclasses.dataclass(eq=False)
class ClassConfig(tfds.core.BuilderConfig):
  raw_dir: str = ""
  spatial_dims: int = 2
  channels: int = 1
  classes: tuple = ()
  multi_label: bool = False
  options: tuple = ()


def _named(prefix: str, raw: str, **fields) -> ClassConfig:
  options = tuple(sorted(fields.pop("options", {}).items()))
  key = (fields.get("spatial_dims"), fields.get("channels"), tuple(fields["classes"]),
         fields.get("multi_label"), options)
  if os.path.isfile(raw):
    st = os.stat(raw)
    key += (st.st_size, st.st_mtime_ns)
  return ClassConfig(name=f"{prefix}-{fingerprint(raw, *key)}", raw_dir=os.path.abspath(raw),
                     options=options, description=f"from {raw}", **fields)


class _ClassBuilder(datasets.KeywordBuilder, skip_registration=True):
  """Features, metadata, checked generation."""

  def _info(self):
    c = self.builder_config
    metadata = tfds.core.MetadataDict(classes=list(c.classes), multi_label=c.multi_label)
    return tfds.core.DatasetInfo(
        builder=self, description=self.DESCRIPTION, metadata=metadata,
        features=class_features(c.spatial_dims, c.channels,
                                len(c.classes) if c.multi_label else 0))

  def _counts(self, items: list[Item]) -> Any:
    c = self.builder_config
    if not c.multi_label:
      return np.bincount([i.label for i in items], minlength=len(c.classes)).tolist()
    codes = np.stack([i.label for i in items]) if items else np.zeros((0, len(c.classes)))
    names = (("positive", 1), ("negative", 0), ("uncertain", -1), ("missing", -2))
    return {name: np.sum(codes == code, 0).astype(int).tolist() for name, code in names}

  def _generators(self, split_items: dict[str, list[Item]], load: Callable, problems=()):
    """Checks every image (`load(item)` -> (*S, C) uint8, raising DataError), records
    counts and groups in the metadata, and returns the split generators."""
    problems = list(problems)
    shape = None
    for items in split_items.values():
      for item in items:
        try:
          image = load(item)
        except DataError as e:
          problems.append(str(e))
          continue
        shape = image.shape if shape is None else shape
        if image.shape != shape:
          problems.append(f"{item.source}: image shape {image.shape} differs from the first "
                          f"image's {shape} (set config.task.builder.size to resize)")
    raise_all(problems, self.builder_config.raw_dir)
    metadata = self.info.metadata
    metadata["label_counts"] = {s: self._counts(v) for s, v in split_items.items() if v}
    metadata["groups"] = {s: sorted({i.group for i in v}) for s, v in split_items.items() if v}
    metadata["image_shape"] = list(shape or ())
    return {s: self._generate_examples(v, load) for s, v in split_items.items() if v}

  def _generate_examples(self, items: list[Item], load: Callable):
    key = "labels" if self.builder_config.multi_label else "label"
    for item in items:
      yield item.id, {"image": load(item), key: item.label, "id": item.id}


def _split_off_val(split_items: dict, val_fraction: float, seed: int) -> dict:
  """Moves whole patient groups of `train` to a new `val` split when there is none."""
  if "val" in split_items or not val_fraction:
    return split_items
  train = split_items["train"]
  val = splits.grouped_val_mask([i.group for i in train], val_fraction, seed)
  return {**split_items, "train": [i for i, v in zip(train, val) if not v],
          "val": [i for i, v in zip(train, val) if v]}


class Shapes(_ClassBuilder):
  """Synthetic blobs (0) vs rings (1), grey (size, size, 1), from a seed (no download)."""

  DESCRIPTION = "Synthetic grey images: filled disks vs rings."

  @classmethod
  def make_config(cls, num_train: int = 256, num_val: int = 64, size: int = 32,
                  seed: int = 0) -> ClassConfig:
    return ClassConfig(name=f"n{num_train}-{num_val}_s{size}_seed{seed}",
                       classes=shapes.CLASSES,
                       options=(("num_train", num_train), ("num_val", num_val),
                                ("seed", seed), ("size", size)))

  def _split_generators(self, dl_manager):
    del dl_manager
    o = self.options
    out = {}
    for stream, split in enumerate(("train", "val")):
      examples = shapes.shape_examples(o["seed"], stream, o[f"num_{split}"], o["size"])
      out[split] = [Item(f"{split}_{i:05d}", image, label, f"{split}_{i:05d}")
                    for i, image, label in examples]
    return self._generators(out, lambda item: item.source)


class ImageFolder(_ClassBuilder):
  """`<raw_dir>/<split>/<CLASS>/*.png|jpeg|...` (splits train [val] [test]), the Kermany
  chest X-ray layout. Classes: `classes`, else train's class folders, sorted. Without
  a val folder, `val_fraction` of train becomes val, grouped by `group_pattern`
  (a regular expression for the patient in the file name; see `splits`)."""

  name = "class_image_folder"
  DESCRIPTION = "Images in one folder per class."

  @classmethod
  def make_config(cls, raw_dir=None, classes=(), channels: int = 1, size=(0, 0),
                  val_fraction: float = 0.1, group_pattern: str = splits.DEFAULT_GROUP_PATTERN,
                  split_seed: int = 0) -> ClassConfig:
    root = _require_dir(raw_dir)
    if not os.path.isdir(os.path.join(root, "train")):
      raise DataError(f"no train/ folder in {root} (expected {root}/train/<CLASS>/*.png, "
                      "and optionally val/ and test/ laid out the same way)")
    classes = _names(classes) or tuple(sorted(
        d for d in os.listdir(os.path.join(root, "train"))
        if os.path.isdir(os.path.join(root, "train", d)) and not d.startswith(".")))
    if len(classes) < 2:
      raise DataError(f"{root}/train has {len(classes)} class folder(s) {list(classes)}; "
                      "a classifier needs at least 2")
    return _named("raw", root, channels=channels, classes=classes, options=dict(
        size=tuple(size), val_fraction=val_fraction, group_pattern=group_pattern,
        split_seed=split_seed))

  def _items(self, split_dir: str, problems: list) -> list[Item]:
    classes, o = self.builder_config.classes, self.options
    items = []
    for entry in sorted(os.listdir(split_dir)):
      path = os.path.join(split_dir, entry)
      if entry.startswith("."):
        continue
      if not os.path.isdir(path):
        if entry.lower().endswith(images.IMAGE_SUFFIXES):
          problems.append(f"{path} is not inside a class folder ({', '.join(classes)})")
        continue
      if entry not in classes:
        problems.append(f"unknown class folder {path} (classes: {', '.join(classes)}; "
                        "set config.task.builder.classes to list them all)")
        continue
      for name in images.list_images(path):
        items.append(Item(f"{entry}/{os.path.splitext(name)[0]}", os.path.join(path, name),
                          classes.index(entry), splits.group_of(name, o["group_pattern"])))
    return items

  def _split_generators(self, dl_manager):
    del dl_manager
    root, o, problems = self.builder_config.raw_dir, self.options, []
    split_items = {s: self._items(os.path.join(root, s), problems) for s in SPLIT_NAMES
                   if os.path.isdir(os.path.join(root, s))}
    if not split_items["train"] and not problems:
      raise DataError(f"no images in the class folders of {root}/train")
    split_items = _split_off_val(split_items, o["val_fraction"], o["split_seed"])
    channels = self.builder_config.channels
    return self._generators(
        split_items, lambda item: images.read_image(item.source, channels, o["size"]),
        problems)


def _require_dir(raw_dir) -> str:
  if not raw_dir:
    raise DataError("config.task.raw_dir is empty: set it to the image folder")
  if not os.path.isdir(raw_dir):
    raise DataError(f"config.task.raw_dir={raw_dir}: directory not found (expected "
                    f"{raw_dir}/train/<CLASS>/*.png)")
  return os.fspath(raw_dir)


class MedMnist(_ClassBuilder):
  """A MedMNIST .npz of any size (`raw_dir=` the file): `train_images`/`train_labels`
  and optional `val_*`, `test_*`; 2D (N, H, W[, C]) or 3D (N, D, H, W) uint8. Labels
  (N, 1): one class per image; (N, K>1): K binary findings (multi-label). Without
  val keys, `val_fraction` of train becomes val (each image its own group)."""

  name = "medmnist"
  DESCRIPTION = "A MedMNIST .npz file (official key names)."

  @classmethod
  def make_config(cls, raw_dir=None, spatial_dims: int = 2, classes=(),
                  val_fraction: float = 0.1, split_seed: int = 0) -> ClassConfig:
    layout = npz.check_layout(raw_dir, spatial_dims)
    classes = _names(classes)
    if layout.multi_label:
      classes = classes or tuple(f"finding_{k}" for k in range(layout.num_labels))
    else:
      classes = classes or tuple(str(k) for k in range(layout.num_labels))
    npz.check_classes(layout, classes)
    return _named("npz", raw_dir, spatial_dims=spatial_dims, channels=layout.channels,
                  classes=classes, multi_label=layout.multi_label,
                  options=dict(val_fraction=val_fraction, split_seed=split_seed))

  def _split_generators(self, dl_manager):
    del dl_manager
    c, o = self.builder_config, self.options
    arrays = npz.load_splits(c.raw_dir, c.spatial_dims)
    split_items = {}
    for split, (image_array, label_array) in arrays.items():
      split_items[split] = [
          Item(f"{split}_{i:06d}", (split, i),
               label_array[i].astype(np.int8) if c.multi_label else int(label_array[i, 0]),
               f"{split}_{i:06d}") for i in range(len(image_array))]
    split_items = _split_off_val(split_items, o["val_fraction"], o["split_seed"])
    return self._generators(split_items, lambda item: arrays[item.source[0]][0][item.source[1]])


def _names(value) -> tuple[str, ...]:
  """Column names from a tuple or a comma-separated string (as a flag gives them)."""
  items = [value] if isinstance(value, str) else list(value)
  return tuple(n.strip() for item in items for n in str(item).split(",") if n.strip())


class CsvImages(_ClassBuilder):
  """A CSV of image paths and findings (`raw_dir=` the file), multi-label: one column
  per finding with 1 / 0 / -1 / blank (CheXpert), or `findings_column` with "A|B"
  (NIH ChestX-ray14). Paths are relative to `image_root` (default: the CSV's folder).
  Validation: `val_csv` (same layout), else `val_fraction` of the rows grouped by
  `group_column` or, without one, by `group_pattern` on the path."""

  name = "csv_images"
  DESCRIPTION = "Images listed in a CSV with multi-label findings."

  @classmethod
  def make_config(cls, raw_dir=None, label_columns=(), path_column: str = "Path",
                  image_root: str = "", findings_column: str = "", group_column: str = "",
                  group_pattern: str = splits.DEFAULT_GROUP_PATTERN, val_csv: str = "",
                  val_fraction: float = 0.1, split_seed: int = 0, channels: int = 1,
                  size=(224, 224)) -> ClassConfig:
    if not raw_dir or not os.path.isfile(raw_dir):
      raise DataError(f"config.task.raw_dir={raw_dir!r}: no such CSV file")
    if val_csv and not os.path.isfile(val_csv):
      raise DataError(f"config.task.builder.val_csv={val_csv!r}: no such CSV file")
    return _named("csv", raw_dir, channels=channels, classes=_names(label_columns),
                  multi_label=True, options=dict(
                      path_column=path_column, image_root=image_root or os.path.dirname(
                          os.path.abspath(raw_dir)), findings_column=findings_column,
                      group_column=group_column, group_pattern=group_pattern,
                      val_csv=os.path.abspath(val_csv) if val_csv else "",
                      val_fraction=val_fraction, split_seed=split_seed, size=tuple(size)))

  def _rows(self, path: str, problems: list) -> list[Item]:
    c, o = self.builder_config, self.options
    rows, found = labels_lib.read_rows(path, o["path_column"], c.classes,
                                       o["findings_column"], o["group_column"])
    problems += found
    return [Item(row.path, os.path.join(o["image_root"], row.path), row.codes,
                 row.group or splits.group_of(row.path, o["group_pattern"])) for row in rows]

  def _split_generators(self, dl_manager):
    del dl_manager
    c, o, problems = self.builder_config, self.options, []
    split_items = {"train": self._rows(c.raw_dir, problems)}
    if o["val_csv"]:
      split_items["val"] = self._rows(o["val_csv"], problems)
    raise_all(problems, c.raw_dir)  # label errors first: no image is read
    split_items = _split_off_val(split_items, o["val_fraction"], o["split_seed"])
    return self._generators(
        split_items, lambda item: images.read_image(item.source, c.channels, o["size"]))
