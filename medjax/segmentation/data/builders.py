"""TFDS builders for 2D segmentation, written as array_record for random access.

Every example is `{"image": (H, W, C), "mask": (H, W) uint8 class labels,
"valid": (H, W) uint8 (1 where pixels count), "id": text}`; within a dataset all
images share dtype and channel count. The raw folder is a builder keyword
(`raw_dir=...`), not TFDS' `manual_dir`: the builder config is named by a hash of
the folder's path, file names, sizes and mtimes (`pairing.fingerprint`), so one
`data_dir` holds one preparation per raw folder and never reuses a stale one.
Use `sources.load_source` to build and read them.
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np
import tensorflow_datasets as tfds

from medjax.engine import datasets
from medjax.segmentation.data import imageio, pairing, phantom
from medjax.segmentation.data.errors import DataError, raise_all


def seg_features(channels: int, dtype) -> tfds.features.FeaturesDict:
  """The feature spec shared by all builders (zlib-compressed raw tensors, no TF needed)."""
  plane = dict(shape=(None, None), dtype=np.uint8, encoding="zlib")
  return tfds.features.FeaturesDict({
      "image": tfds.features.Tensor(shape=(None, None, channels), dtype=np.dtype(dtype),
                                    encoding="zlib"),
      "mask": tfds.features.Tensor(**plane),
      "valid": tfds.features.Tensor(**plane),
      "id": tfds.features.Text(),
  })


@dataclasses.dataclass(eq=False)
class SegConfig(tfds.core.BuilderConfig):
  """Builder options; `options` holds (key, value) pairs specific to one builder."""
  raw_dir: str = ""
  channels: int = 1
  dtype: str = "int16"
  options: tuple = ()


class _SegBuilder(datasets.KeywordBuilder, skip_registration=True):
  """Shared plumbing: features, example checks."""

  def _info(self) -> tfds.core.DatasetInfo:
    c = self.builder_config
    return tfds.core.DatasetInfo(builder=self, description=self.DESCRIPTION,
                                 features=seg_features(c.channels, c.dtype))

  def _checked_generators(self, splits: dict[str, list[pairing.Pair]], problems=()) -> dict:
    """Reads every pair of every split before anything is written, so that one
    DataError names all bad files (and `problems` found while pairing them)."""
    c = self.builder_config
    problems = list(problems)
    for pairs in splits.values():
      problems += pairing.check_pairs(pairs, c.dtype, c.channels)
    raise_all(problems, c.raw_dir)
    return {s: self._generate_examples(p) for s, p in splits.items() if p}

  def _generate_examples(self, pairs: list[pairing.Pair]):
    for pair in pairs:
      example = pairing.load_pair(pair, self.builder_config.dtype)
      if example["image"].shape[-1] != self.builder_config.channels:
        raise DataError(f"image {pair.image} has {example['image'].shape[-1]} channels; "
                        f"the others have {self.builder_config.channels}")
      yield pair.id, example


def _require_raw(raw_dir, expected: str) -> str:
  if not raw_dir:
    raise DataError(f"raw_dir is required: the folder holding {expected}")
  return imageio.require_dir(os.fspath(raw_dir), expected)


def _raw_config(raw_dir, channels: int, dtype: str, **options) -> SegConfig:
  raw_dir = _require_raw(raw_dir, "the raw images and masks")
  options = tuple(sorted(options.items()))
  name = "raw-" + pairing.fingerprint(raw_dir, channels, dtype, options)
  return SegConfig(name=name, raw_dir=os.path.abspath(raw_dir), channels=channels,
                   dtype=dtype, options=options, description=f"from {raw_dir}")


class CtPhantom(_SegBuilder):
  """Synthetic chest CT slices (int16 HU) with lung labels; see `phantom.py`."""

  DESCRIPTION = "Synthetic CT slices (int16 HU, HxWx1) with lung masks, from a seed."

  @classmethod
  def make_config(cls, num_train: int = 256, num_val: int = 32, size: int = 128,
                  seed: int = 0) -> SegConfig:
    options = (("num_train", num_train), ("num_val", num_val), ("size", size), ("seed", seed))
    return SegConfig(name=f"n{num_train}-{num_val}_s{size}_seed{seed}", options=options)

  def _split_generators(self, dl_manager):
    del dl_manager
    o = self.options
    return {"train": self._generate_examples(0, o["num_train"]),
            "val": self._generate_examples(1, o["num_val"])}

  def _generate_examples(self, stream: int, count: int):
    split = ("train", "val")[stream]
    o = self.options
    for i, image, label in phantom.phantom_examples(o["seed"], stream, count, o["size"]):
      key = f"phantom_{split}_{i:05d}"
      yield key, {"image": image[..., None], "mask": label,
                  "valid": np.ones_like(label), "id": key}


class LungCt2d(_SegBuilder):
  """`<raw_dir>/{train,val,test}/<image_subdir>/*.tif` (int16 HU) + `<mask_subdir>/*.tif`.

  Masks share the image file name. `image_subdir="images", mask_subdir="masks"`
  reads the 512x512 originals laid out the same way.
  """

  name = "lung_ct_2d"
  DESCRIPTION = "2D lung CT slices (int16 HU, HxWx1) with lung masks (Kaggle kmader)."
  SPLITS = ("train", "val", "test")

  @classmethod
  def make_config(cls, raw_dir=None, image_subdir: str = "images_256",
                  mask_subdir: str = "masks_256") -> SegConfig:
    return _raw_config(raw_dir, 1, "int16", image_subdir=image_subdir,
                       mask_subdir=mask_subdir)

  def _split_generators(self, dl_manager):
    del dl_manager
    root, o = self.builder_config.raw_dir, self.options
    names = [s for s in self.SPLITS if os.path.isdir(os.path.join(root, s))]
    if not names:
      raise DataError(f"no split folder ({', '.join(self.SPLITS)}) in {root}")
    splits, problems = {}, []
    for s in names:
      splits[s], found = _match(os.path.join(root, s, o["image_subdir"]),
                                os.path.join(root, s, o["mask_subdir"]))
      problems += found
    return self._checked_generators(splits, problems)


DRIVE_VAL_IDS = (37, 38, 39, 40)


def drive_pairs(folder: str, kind: str) -> list[pairing.Pair]:
  """DRIVE files of `folder` (`kind` is "training" or "test"), ordered by id."""
  image_dir = imageio.require_dir(os.path.join(folder, "images"), f"NN_{kind}.tif fundus images")
  imageio.require_dir(os.path.join(folder, "1st_manual"), "NN_manual1.gif vessel labels")
  imageio.require_dir(os.path.join(folder, "mask"), f"NN_{kind}_mask.gif FOV masks")
  ids = sorted(m.group(1) for n in os.listdir(image_dir)
               if (m := re.fullmatch(rf"(\d+)_{kind}\.tiff?", n)))
  if not ids:
    raise DataError(f"no NN_{kind}.tif images in {image_dir}")
  return [pairing.Pair(i, os.path.join(image_dir, f"{i}_{kind}.tif"),
                       os.path.join(folder, "1st_manual", f"{i}_manual1.gif"),
                       os.path.join(folder, "mask", f"{i}_{kind}_mask.gif")) for i in ids]


class Drive(_SegBuilder):
  """DRIVE retinal vessels: RGB uint8 images, vessel labels {0, 1}, valid = FOV mask.

  Splits: `train` = training ids 21-36, `val` = 37-40, `test` = 01-20 when
  `<raw_dir>/test` exists.
  """

  DESCRIPTION = "DRIVE fundus photographs (RGB uint8) with vessel labels and FOV masks."

  @classmethod
  def make_config(cls, raw_dir=None) -> SegConfig:
    return _raw_config(raw_dir, 3, "uint8")

  def _split_generators(self, dl_manager):
    del dl_manager
    root = self.builder_config.raw_dir
    training = drive_pairs(os.path.join(root, "training"), "training")
    splits = {"train": [p for p in training if int(p.id) not in DRIVE_VAL_IDS],
              "val": [p for p in training if int(p.id) in DRIVE_VAL_IDS]}
    if os.path.isdir(os.path.join(root, "test")):
      splits["test"] = drive_pairs(os.path.join(root, "test"), "test")
    return self._checked_generators(splits)


def folder_splits(root: str) -> dict[str, str]:
  """`{split: folder}`: subfolders holding `images/`, else `{"train": root}`."""
  if os.path.isdir(os.path.join(root, "images")):
    return {"train": root}
  splits = {n: os.path.join(root, n) for n in sorted(os.listdir(root))
            if os.path.isdir(os.path.join(root, n, "images"))}
  if not splits:
    raise DataError(f"no images/ folder in {root} (expected {root}/images/ + masks/, or "
                    f"{root}/<split>/images/ + masks/)")
  return splits


def _match(image_dir: str, mask_dir: str, valid_dir: str | None = None):
  """`pairing.match_folder`, with a missing or empty folder as one more problem."""
  try:
    return pairing.match_folder(image_dir, mask_dir, valid_dir)
  except DataError as e:
    return [], [str(e)]


def _folder_pairs(folder: str) -> tuple[list[pairing.Pair], list[str]]:
  valid = os.path.join(folder, "valid")
  return _match(os.path.join(folder, "images"), os.path.join(folder, "masks"),
                valid if os.path.isdir(valid) else None)


def _first_image(root: str):
  """The first readable image of the folder dataset at `root` (it sets channels and
  dtype); a DataError listing every problem when none can be read."""
  problems = []
  for folder in folder_splits(root).values():
    pairs, found = _folder_pairs(folder)
    problems += found
    for pair in pairs:
      try:
        return imageio.with_channel_axis(imageio.read_image(pair.image), pair.image)
      except DataError as e:
        problems.append(str(e))
  raise_all(problems, root)
  raise DataError(f"no readable image in {root}")


class SegImageFolder(_SegBuilder):
  """Generic `<raw_dir>/[<split>/]images/*` + `masks/*` (+ optional `valid/*`).

  Masks and validity masks match images by file stem (`pairing.MASK_SUFFIXES`);
  {0, 255} masks become {0, 1}, other integer labels are kept; valid is nonzero.
  Channel count and dtype come from the first readable image. Every file is read
  before anything is written: one DataError lists all bad or unmatched files.
  """

  name = "seg_image_folder"
  DESCRIPTION = "Images with segmentation masks from a folder."

  @classmethod
  def make_config(cls, raw_dir=None) -> SegConfig:
    root = _require_raw(raw_dir, "images/ and masks/ folders")
    image = _first_image(root)
    return _raw_config(root, image.shape[-1], str(image.dtype))

  def _split_generators(self, dl_manager):
    del dl_manager
    splits, problems = {}, []
    for s, folder in folder_splits(self.builder_config.raw_dir).items():
      splits[s], found = _folder_pairs(folder)
      problems += found
    return self._checked_generators(splits, problems)
