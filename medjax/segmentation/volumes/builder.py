"""TFDS builders for 3D segmentation: preprocessed volumes written as array_record.

Every example is `{"image": (x, y, z, C) float32, "mask": (x, y, z) uint8 labels,
"spacing": (3,) float32 mm, "id": text, "grid": text}`: the volume after
reorientation, crop, resampling to the target spacing and intensity
normalisation (see `geometry` and `intensity`), and `grid` the
`geometry.GridRecord` JSON that maps a prediction back onto the original file's
grid. Labelled cases are split into `train` and `val` by a seeded permutation
of the sorted case ids (`val_fraction`, `split_seed`), so the validation subset
is fixed for a given folder and seed. The config name hashes the raw folder
(names, sizes, mtimes) and every option, so a changed folder or option never
reuses a stale preparation. The case ids of each split and the CT intensity
statistics are kept in the dataset's metadata (`builder.info.metadata`). Use
`sources.load_source("msd", ...)`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from medjax.engine import datasets
from medjax.segmentation.data import pairing
from medjax.segmentation.data.errors import DataError
from medjax.segmentation.volumes import geometry, intensity, msd, phantom


def volume_features(channels: int) -> tfds.features.FeaturesDict:
  volume = dict(shape=(None, None, None), dtype=np.uint8, encoding="zlib")
  return tfds.features.FeaturesDict({
      "image": tfds.features.Tensor(shape=(None, None, None, channels), dtype=np.float32,
                                    encoding="zlib"),
      "mask": tfds.features.Tensor(**volume),
      "spacing": tfds.features.Tensor(shape=(3,), dtype=np.float32),
      "id": tfds.features.Text(),
      "grid": tfds.features.Text(),
  })


@dataclasses.dataclass(eq=False)
class VolumeConfig(tfds.core.BuilderConfig):
  """Preprocessing options (see `experiments/configs/segmentation.py`, `task.volume`)."""
  raw_dir: str = ""
  channels: int = 1
  target_spacing: tuple = ()  # mm along canonical (R, A, S); () or zeros: keep each case's
  normalisation: str = "mri"
  crop: bool = True
  val_fraction: float = 0.2
  split_seed: int = 0
  options: tuple = ()


def split_ids(ids, val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
  """(train, val) ids: a seeded permutation of the sorted ids; val takes the first
  round(val_fraction * n), at least one when val_fraction > 0 and n > 1."""
  ids = sorted(ids)
  if not 0 <= val_fraction < 1:
    raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
  n_val = int(round(val_fraction * len(ids)))
  if val_fraction > 0 and len(ids) > 1:
    n_val = min(max(n_val, 1), len(ids) - 1)
  order = np.random.default_rng(seed).permutation(len(ids))
  val = sorted(ids[i] for i in order[:n_val])
  return [i for i in ids if i not in set(val)], val


class _VolumeBuilder(datasets.KeywordBuilder, skip_registration=True):
  """Shared plumbing: case loading -> geometry -> intensity -> examples."""

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(builder=self, description=self.DESCRIPTION,
                                 features=volume_features(self.builder_config.channels),
                                 metadata=tfds.core.MetadataDict())

  def case_ids(self) -> list[str]:
    raise NotImplementedError

  def load(self, case_id: str):
    """(image Volume, label Volume) of one case."""
    raise NotImplementedError

  def _split_generators(self, dl_manager):
    del dl_manager
    c = self.builder_config
    train, val = split_ids(self.case_ids(), c.val_fraction, c.split_seed)
    logging.info("%d training and %d validation cases; val: %s", len(train), len(val),
                 " ".join(val))
    stats = self._ct_stats(train) if c.normalisation == "ct" else None
    # Saved with the prepared data (metadata.json): prediction normalises alike.
    labels = {str(k): v for k, v in self.labels().items()}
    self.info.metadata.update(train_ids=train, val_ids=val, labels=labels, intensity_stats=(
        {k: np.asarray(v).tolist() for k, v in stats.items()} if stats else None))
    splits = {"train": train, "val": val}
    return {s: self._generate_examples(ids, stats) for s, ids in splits.items() if ids}

  def labels(self) -> dict[int, str]:
    raise NotImplementedError

  def _ct_stats(self, ids) -> dict:
    """Foreground intensity statistics of the training cases (CT normalisation), read
    one case at a time."""
    samples = (intensity.sample_foreground(image.array, label.array, 10000,
                                           np.random.default_rng(i))
               for i, (image, label) in enumerate(self.load(c) for c in ids))
    return intensity.summarise(samples)

  def _generate_examples(self, ids, stats):
    c = self.builder_config
    spacing = tuple(c.target_spacing) if any(c.target_spacing) else None
    for case_id in ids:
      image, label = self.load(case_id)
      array, mask, record = geometry.forward(image, label.array, spacing, crop=c.crop)
      array = intensity.normalise(array, c.normalisation, stats)
      yield case_id, {"image": array.astype(np.float32), "mask": mask.astype(np.uint8),
                      "spacing": _spacing(record), "id": case_id, "grid": record.to_json()}


def _spacing(record) -> np.ndarray:
  """The preprocessed grid's voxel size in mm, along its (canonical) axes."""
  affine = geometry.preprocessed_affine(record)
  return np.linalg.norm(affine[:3, :3], axis=0).astype(np.float32)


def _options(target_spacing, normalisation, crop, val_fraction, split_seed, **extra):
  return dict(target_spacing=tuple(float(s) for s in target_spacing),
              normalisation=normalisation, crop=bool(crop), val_fraction=float(val_fraction),
              split_seed=int(split_seed), options=tuple(sorted(extra.items())))


class MsdVolumes(_VolumeBuilder):
  """Any Medical Segmentation Decathlon-style folder (`msd.MsdFolder`)."""

  name = "msd_volumes"
  DESCRIPTION = "3D volumes with labels from an MSD-style folder, preprocessed."

  @classmethod
  def make_config(cls, raw_dir=None, target_spacing=(), normalisation="mri", crop=True,
                  val_fraction=0.2, split_seed=0, labels=None) -> VolumeConfig:
    if not raw_dir or not os.path.isdir(raw_dir):
      raise DataError(f"raw_dir {raw_dir!r} is not a folder: set config.task.raw_dir to an "
                      "MSD-style folder (imagesTr/, labelsTr/, optional dataset.json)")
    labels = json.dumps(labels, sort_keys=True) if labels else ""
    options = _options(target_spacing, normalisation, crop, val_fraction, split_seed,
                       labels=labels)
    folder = msd.MsdFolder(raw_dir, labels=_decode_labels(labels))
    name = "raw-" + pairing.fingerprint(raw_dir, tuple(options.items()))
    return VolumeConfig(name=name, raw_dir=os.path.abspath(raw_dir),
                        channels=len(folder.channels), description=f"from {raw_dir}",
                        **options)

  @functools.cached_property
  def folder(self) -> msd.MsdFolder:
    labels = _decode_labels(dict(self.builder_config.options).get("labels", ""))
    return msd.MsdFolder(self.builder_config.raw_dir, labels=labels)

  def case_ids(self):
    self._cases = {case.id: case for case in self.folder.cases("train")}
    if not self._cases:
      raise DataError(f"no labelled cases in {self.builder_config.raw_dir}/imagesTr")
    return list(self._cases)

  def load(self, case_id):
    return msd.load_case(self._cases[case_id], self.folder.labels,
                         channels=self.builder_config.channels)

  def labels(self):
    return self.folder.labels


def _decode_labels(labels: str):
  return {int(k): v for k, v in json.loads(labels).items()} if labels else None


class VolumePhantom(_VolumeBuilder):
  """Synthetic two-structure MRI-like volumes (`phantom.py`); no data needed."""

  name = "volume_phantom"
  DESCRIPTION = "Synthetic MRI-like volumes with two labelled structures, from seeds."

  @classmethod
  def make_config(cls, num_cases: int = 24, seed: int = 0, shape=(32, 40, 24),
                  target_spacing=(1.0, 1.0, 1.5), normalisation="mri", crop=True,
                  val_fraction=0.2, split_seed=0) -> VolumeConfig:
    options = _options(target_spacing, normalisation, crop, val_fraction, split_seed,
                       num_cases=int(num_cases), seed=int(seed),
                       shape=tuple(int(s) for s in shape))
    digest = pairing.fingerprint(os.devnull, tuple(options.items()))
    return VolumeConfig(name=f"n{num_cases}_seed{seed}_{digest}", **options)

  def case_ids(self):
    n = dict(self.builder_config.options)["num_cases"]
    return [f"phantom_{i:04d}" for i in range(n)]

  def labels(self):
    return {0: "background", 1: "anterior", 2: "posterior"}

  def load(self, case_id):
    o = dict(self.builder_config.options)
    return phantom.phantom_case(o["seed"] * 100003 + int(case_id.split("_")[1]), o["shape"])
