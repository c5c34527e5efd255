"""3D segmentation on the shared engine: prepared volumes, patches, whole-case evaluation.

`config.task.spatial_dims = 3` selects it (see `segmentation.task.make_task`).
Volumes are preprocessed once by the builder (`task.volume.*`: target spacing,
normalisation, crop, validation subset); training draws random patches
(`task.patch_size`, a `task.volume.foreground_fraction` of them centred on
foreground classes) and augments them on device; evaluation predicts each whole
validation case by Gaussian-blended sliding windows of the patch size
(optionally mirrored) and scores Dice, HD95 and NSD in mm per class and case.
"""

from __future__ import annotations

import functools
import json
import os

import numpy as np

from medjax.engine.errors import InputError
from medjax.engine.task import Evaluator
from medjax.segmentation import inference, losses, task as task2d, transforms
from medjax.segmentation.volumes import metrics as volume_metrics
from medjax.segmentation.volumes import msd, pipeline, plan as plan_lib, predict, report

_DATASETS = ("msd", "volume_phantom")
PREPROCESSING_FILE = "preprocessing.json"


class VolumeEvaluator(Evaluator):
  """Whole-case sliding-window prediction over one split; per-class case metrics."""

  def __init__(self, name, source, task_config):
    self.name, self.source, self.config = name, source, task_config

  def cases(self):
    return pipeline.cases(self.source, limit=self.config.volume.max_eval_cases)

  def predict_case(self, predict_fn, image):
    return predict_volume(self.config, predict_fn, image)

  def case_rows(self, predict_fn):
    """`metrics.CaseMetrics` of every case of the split (per class: Dice, HD95 and NSD
    in mm on the preprocessed grid, volume error)."""
    for case in self.cases():
      probs = self.predict_case(predict_fn, case["image"])
      yield volume_metrics.case_metrics(
          case["id"], probs.argmax(-1), case["label"], case["spacing"],
          self.config.num_classes, tolerance_mm=self.config.volume.nsd_tolerance_mm)

  def run(self, predict_fn):
    """Dice, HD95 and NSD per class and their means, the mean volume error, and the
    count of cases with an undefined HD95 when there are any (the end-of-run report
    keeps every metric)."""
    summary = volume_metrics.aggregate(list(self.case_rows(predict_fn)))
    for name, value in summary.items():
      if name.startswith(_LOGGED) or (name.startswith("num_undefined_hd95") and value):
        yield name, value


_LOGGED = ("dice_", "hd95_mm_", "nsd_", "volume_error_ml_mean", "num_cases")


class VolumeSegmentationTask(task2d.SegmentationTask):
  """3D semantic segmentation of medical volumes (MSD-style folders, phantoms)."""

  def __init__(self, task_config, compute_dtype: str = "float32"):
    if task_config.dataset not in _DATASETS:
      raise InputError(f"config.task.dataset: {task_config.dataset!r} is not a volume "
                       f"dataset (with spatial_dims=3 use one of {_DATASETS})")
    if task_config.loss not in task2d.LOSSES:
      raise InputError(f"config.task.loss: unknown {task_config.loss!r} "
                       f"(known: {task2d.LOSSES})")
    if len(task_config.patch_size) != 3 or not all(task_config.patch_size):
      raise InputError(f"config.task.patch_size: 3D training needs three patch sizes, "
                       f"got {tuple(task_config.patch_size)}")
    self.config = task_config
    self.model = task2d.make_model(task_config, compute_dtype)
    self.preprocess = None  # volumes are preprocessed by the builder

  def _builder_args(self) -> dict:
    c = self.config
    v = c.volume
    return dict(name=c.dataset, data_dir=c.data_dir or task2d.default_data_dir(),
                raw_dir=task2d.raw_dir_for(c) if c.dataset == "msd" else None,
                target_spacing=tuple(v.target_spacing), normalisation=v.normalisation,
                crop=v.crop, val_fraction=v.val_fraction, split_seed=v.split_seed,
                **c.builder.to_dict())

  def _source(self, split):
    return task2d.sources.load_source(split=split, **self._builder_args())

  def normalisation_stats(self):
    """The training set's CT intensity statistics (None for MRI normalisation)."""
    if self.preprocessing is not None:
      return self.preprocessing["intensity_stats"]
    return self.metadata.get("intensity_stats")

  def predict_volume(self, predict_fn, image):
    return predict_volume(self.config, predict_fn, image)

  def predict_folder(self, config, workdir, input_dir, output_dir):
    """NIfTI labels on each input's own grid (see `volumes.predict`); the training
    data are needed only when the workdir has no `preprocessing.json`."""
    self.read_preprocessing(workdir)
    return predict.predict_folder(config, workdir, self, input_dir, output_dir)

  def plan(self, workdir, memory_mb):
    """Fingerprints the raw folder; writes `<workdir>/plan.json`; returns a summary."""
    c = self.config
    if c.dataset != "msd":
      raise InputError("--mode=plan reads an MSD-style folder: set config.task.dataset=msd "
                       "and config.task.raw_dir")
    labels = c.builder.get("labels")
    folder = msd.MsdFolder(task2d.raw_dir_for(c),
                           labels={int(k): v for k, v in labels.items()} if labels else None)
    cases = (msd.load_case(case, folder.labels) for case in folder.cases("train"))
    fingerprint = plan_lib.fingerprint(cases, num_classes=max(folder.labels) + 1,
                                       modalities=folder.channels)
    result = plan_lib.make_plan(fingerprint, memory_mb=memory_mb)
    overrides = plan_lib.as_overrides(result)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "plan.json"), "w") as f:
      json.dump({"plan": result, "overrides": overrides, "fingerprint": fingerprint}, f,
                indent=1, default=_jsonable)
    lines = [f"{k}: {_jsonable(v) if isinstance(v, np.generic) else v}"
             for k, v in result.items()]
    return "\n".join(lines + ["as flags: " + " ".join(overrides)])

  def in_channels(self) -> int:
    if self.preprocessing is not None:  # read back from a trained workdir
      return int(self.preprocessing["channels"])
    return int(self.train_source[0]["image"].shape[-1])

  preprocessing = None  # {"channels", "intensity_stats"} of a trained workdir

  def write_run_files(self, workdir) -> None:
    """`<workdir>/preprocessing.json`: what prediction needs without the training data."""
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, PREPROCESSING_FILE), "w") as f:
      json.dump({"channels": self.in_channels(), "labels": self.metadata.get("labels"),
                 "intensity_stats": self.normalisation_stats()}, f, indent=1)

  def prepare(self):
    """Prepares and opens every split (bad data fails here), then checks that
    `num_classes` fits the dataset's classes."""
    sources = super().prepare()
    labels = self.metadata.get("labels") or {}
    expected = max((int(k) for k in labels), default=0) + 1
    if labels and expected != self.config.num_classes:
      raise InputError(f"config.task.num_classes is {self.config.num_classes}, but the "
                       f"dataset's classes are {labels}: set --config.task.num_classes="
                       f"{expected}")
    return sources

  @functools.cached_property
  def metadata(self) -> dict:
    """The prepared dataset's metadata: split ids, classes, CT statistics."""
    return task2d.sources.make_builder(**self._builder_args()).info.metadata

  def read_preprocessing(self, workdir) -> None:
    path = os.path.join(workdir, PREPROCESSING_FILE)
    if os.path.exists(path):
      with open(path) as f:
        self.preprocessing = json.load(f)

  def loss(self, outputs, batch):
    kw = dict(mask=batch["valid"], example_weight=batch["_mask"])
    loss_fn = functools.partial(_dice_ce, mode=self.config.loss,
                                dice_weight=self.config.dice_weight)
    if isinstance(outputs, (tuple, list)):
      total = losses.deep_supervision_loss(outputs, batch["label"], loss_fn, **kw)
      outputs = outputs[0]
    else:
      total = loss_fn(outputs, batch["label"], **kw)
    terms = losses.per_class_dice(outputs, batch["label"], **kw)
    return total, terms

  def augment(self, batch, key):
    return self._augmentation(batch, key)

  @functools.cached_property
  def _augmentation(self):
    return transforms.volume_augmentation(self.config.augment, tuple(self.config.patch_size))

  def train_dataset(self, batch_size, seed, shard_index=0, shard_count=1):
    c = self.config
    return pipeline.train_dataset(self.train_source, tuple(c.patch_size), c.num_classes,
                                  batch_size, seed, c.volume.foreground_fraction,
                                  shard_index, shard_count)

  def example_batch(self, batch_size):
    size = tuple(self.config.patch_size)
    return {"image": np.zeros((batch_size, *size, self.in_channels()), np.float32)}

  def evaluators(self):
    return [VolumeEvaluator(split, source, self.config)
            for split, source in self.eval_sources.items()]

  def report(self, predict_fn, workdir):
    if not self.eval_sources:
      return {}
    return report.write_report(self.evaluators()[0], predict_fn, workdir)


def predict_volume(task_config, predict_fn, image):
  """Softmax probabilities (x, y, z, K) of one whole preprocessed case by sliding
  windows of the patch size (Gaussian blending, optional mirroring)."""
  w = task_config.sliding_window
  return inference.predict_volume(
      image, tuple(task_config.patch_size), lambda x: predict_fn({"image": x}),
      overlap=w.overlap, mode=w.mode, sw_batch_size=w.batch_size,
      mirror_axes=tuple(task_config.volume.mirror_axes))


def _jsonable(value):
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, np.generic):
    return value.item()
  raise TypeError(f"not JSON serialisable: {type(value)}")


def _dice_ce(logits, labels, mask, example_weight, mode, dice_weight):
  if mode == "dice_ce":
    return losses.dice_ce(logits, labels, mask, example_weight, dice_weight=dice_weight)
  if mode == "ce":
    return losses.cross_entropy(logits, labels, mask, example_weight)
  return losses.soft_dice(logits, labels, mask, example_weight)
