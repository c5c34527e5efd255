"""The classification task: CNN classifiers on images (2D / 3D), single- or multi-label.

Built from `config.task` (see experiments/configs/classification.py). Single-label
data (two or more classes) train a softmax head with cross-entropy (optionally
label smoothing and class weights from the training frequencies); multi-label
data (findings) a sigmoid per finding with binary cross-entropy, masked where a
label is missing or, under the "ignore" policy, uncertain.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import os

from absl import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax

from medjax.classification import evaluation
from medjax.classification import models
from medjax.classification.data import labels as labels_lib
from medjax.classification.data import pipeline
from medjax.classification.data import sources
from medjax.engine.errors import InputError
from medjax.engine.task import Task
from medjax.segmentation import transforms

INFO_FILE = "classification.json"  # in the workdir: what predict needs without the data
WEIGHTING = ("none", "balanced")


def default_data_dir() -> str:
  return os.environ.get("MEDJAX_DATA_DIR",
                        os.path.join(os.path.expanduser("~"), ".cache", "medjax", "tfds"))


def raw_dir_for(c) -> str | None:
  """`task.raw_dir`, else $MEDJAX_SHARED_DATA/<task.shared_folder>[/<task.shared_file>]."""
  if c.raw_dir:
    return c.raw_dir
  if c.dataset == "shapes":
    return None
  if c.shared_folder and "MEDJAX_SHARED_DATA" in os.environ:
    return os.path.join(os.environ["MEDJAX_SHARED_DATA"], c.shared_folder, c.shared_file)
  raise InputError(f"config.task.raw_dir is empty: set it (or $MEDJAX_SHARED_DATA) to the "
                   f"{c.dataset!r} data")


def _check_config(c) -> None:
  if c.class_weighting not in WEIGHTING:
    raise InputError(f"config.task.class_weighting: unknown {c.class_weighting!r} "
                     f"(known: {', '.join(WEIGHTING)})")
  if c.sampling not in pipeline.SAMPLING:
    raise InputError(f"config.task.sampling: unknown {c.sampling!r} "
                     f"(known: {', '.join(pipeline.SAMPLING)})")
  if not 0.0 <= c.label_smoothing < 1.0:
    raise InputError(f"config.task.label_smoothing must be in [0, 1), got {c.label_smoothing}")
  labels_lib.check_policy(c.uncertain_policy)


def _builder_kwargs(c) -> dict:
  kwargs = c.builder.to_dict()
  if c.dataset == "medmnist":
    kwargs.setdefault("spatial_dims", c.spatial_dims)
  return kwargs


def model_kwargs(model_config) -> dict:
  """`model.kwargs` that are fields of `model.name`. A preset declares the fields of
  its own model (so that flags can set them); after `--config.task.model.name=...`
  the ones the new model lacks are dropped, and logged."""
  kwargs = model_config.kwargs.to_dict()
  if model_config.name not in models.MODELS:
    return kwargs  # make_model names the known models
  fields = {f.name for f in dataclasses.fields(models.MODELS[model_config.name][1])}
  dropped = sorted(set(kwargs) - fields)
  if dropped:
    logging.info("config.task.model.kwargs: %s not used by %s", ", ".join(dropped),
                 model_config.name)
  return {k: v for k, v in kwargs.items() if k in fields}


def class_weights(info: sources.DataInfo, weighting: str, policy: str,
                  split: str = "train") -> np.ndarray:
  """(K,) loss weights. Single-label "balanced": N / (K n_c), as scikit-learn; multi-label
  "balanced": the positive-label weight n_negative / n_positive of each finding."""
  k = len(info.classes)
  if weighting == "none":
    return np.ones(k, np.float32)
  counts = info.label_counts[split.split("[")[0]]
  if not info.multi_label:
    n = np.asarray(counts, np.float64)
    return (n.sum() / (k * np.maximum(n, 1))).astype(np.float32)
  pos, neg = (np.asarray(counts[key], np.float64) for key in ("positive", "negative"))
  unc = np.asarray(counts["uncertain"], np.float64)
  pos, neg = pos + unc * (policy == "ones"), neg + unc * (policy == "zeros")
  return (neg / np.maximum(pos, 1)).astype(np.float32)


class ClassificationTask(Task):
  """Image classification on the shared engine."""

  native_precision = True  # the models take compute_dtype themselves

  def __init__(self, task_config, compute_dtype: str = "float32",
               info: sources.DataInfo | None = None):
    _check_config(task_config)
    self.config, self.compute_dtype = task_config, compute_dtype
    if info is not None:
      self.__dict__["info"] = info
    self.thresholds = None  # chosen on the validation split by its evaluator

  # -- Data ------------------------------------------------------------------------

  @functools.cached_property
  def builder(self):
    c = self.config
    return sources.prepared(c.dataset, c.data_dir or default_data_dir(), raw_dir_for(c),
                            **_builder_kwargs(c))

  @functools.cached_property
  def info(self) -> sources.DataInfo:
    info = sources.info_of(self.builder)
    if info.spatial_dims != self.config.spatial_dims:
      raise InputError(f"config.task.spatial_dims={self.config.spatial_dims} but the "
                       f"{self.config.dataset!r} images have {info.spatial_dims} spatial axes")
    return info

  def prepare(self):
    """Prepares (if needed) and opens every split now, so that bad data fails early."""
    return self.info, self.train_data, self.eval_sources

  @functools.cached_property
  def train_data(self):
    return sources.source_of(self.builder, self.config.train_split)

  @functools.cached_property
  def eval_sources(self) -> dict:
    """{split: source} of the validation split and, when the data have it, the test one."""
    c = self.config
    out = {c.val_split: sources.source_of(self.builder, c.val_split)}
    if c.test_split and c.test_split in self.info.splits:
      out[c.test_split] = sources.source_of(self.builder, c.test_split)
    return out

  @functools.cached_property
  def preprocess(self) -> pipeline.Preprocess:
    return pipeline.Preprocess(self.info.multi_label, self.config.uncertain_policy)

  def train_dataset(self, batch_size, seed, shard_index=0, shard_count=1):
    c = self.config
    labels = None
    if c.sampling == "balanced":
      if self.info.multi_label:
        raise InputError("config.task.sampling=balanced needs single-label data; for "
                         "findings use config.task.class_weighting=balanced")
      labels = sources.labels_of(self.builder, c.train_split)
    return pipeline.train_dataset(self.train_data, self.preprocess, batch_size, seed,
                                  shard_index, shard_count, c.sampling, labels)

  def example_batch(self, batch_size):
    return {"image": np.zeros((batch_size, *self.info.image_shape), np.float32)}

  # -- Model and loss --------------------------------------------------------------

  @functools.cached_property
  def model(self):
    m = self.config.model
    return models.make_model(m.name, len(self.info.classes), self.config.spatial_dims,
                             m.dropout, jnp.dtype(self.compute_dtype), **model_kwargs(m))

  @functools.cached_property
  def _input_name(self) -> str:
    params = list(inspect.signature(type(self.model).__call__).parameters)
    return params[1]  # after self: the image argument

  def model_inputs(self, batch):
    return {self._input_name: batch["image"]}

  @functools.cached_property
  def weights(self) -> np.ndarray:
    c = self.config
    return class_weights(self.info, c.class_weighting, c.uncertain_policy, c.train_split)

  def loss(self, outputs, batch):
    logits = outputs.astype(jnp.float32)
    if self.info.multi_label:
      return multi_label_loss(logits, batch, self.weights)
    return softmax_loss(logits, batch, self.weights, self.config.label_smoothing)

  def augment(self, batch, key):
    """Flips, rotation + scaling and intensity on the image only (segmentation's
    transforms, given a dummy label that XLA drops)."""
    a = self.config.augment
    steps = []
    if a.flip_axes:
      steps.append(functools.partial(transforms.random_flip, axes=tuple(a.flip_axes)))
    if a.rotate_degrees or a.scale:
      steps.append(functools.partial(transforms.random_affine, max_degrees=a.rotate_degrees,
                                     scale=a.scale, probability=a.affine_probability))
    if a.intensity_scale or a.intensity_shift:
      steps.append(functools.partial(transforms.random_intensity, scale=a.intensity_scale,
                                     shift=a.intensity_shift))
    if not steps:
      return batch
    image = batch["image"]
    spatial = {"image": image, "label": jnp.zeros(image.shape[:-1], jnp.int32)}
    return {**batch, "image": transforms.compose(*steps)(spatial, key)["image"]}

  # -- Evaluation, report, prediction ----------------------------------------------

  def probabilities(self, logits) -> np.ndarray:
    logits = np.asarray(logits, np.float64)
    if self.info.multi_label:
      return 1.0 / (1.0 + np.exp(-logits))
    return np.asarray(jax.nn.softmax(logits, axis=-1))

  def evaluators(self):
    c = self.config
    return [evaluation.ClassificationEvaluator(self, split, source, final_only=split != c.val_split)
            for split, source in self.eval_sources.items()]

  def save_info(self, workdir: str) -> str:
    """Writes what `--mode=predict` needs without the training data."""
    path = os.path.join(workdir, INFO_FILE)
    with open(path, "w", encoding="utf-8") as f:
      json.dump(self.info._asdict(), f, indent=2)
    return path

  @classmethod
  def from_workdir(cls, task_config, workdir: str, compute_dtype: str = "float32"):
    path = os.path.join(workdir, INFO_FILE)
    if not os.path.isfile(path):
      raise InputError(f"{path} not found: --workdir must hold a classification run "
                       "(its training writes it)")
    with open(path, encoding="utf-8") as f:
      fields = json.load(f)
    info = sources.DataInfo(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in fields.items()})
    return cls(task_config, compute_dtype, info)

  def report(self, predict_fn, workdir):
    return evaluation.write_report(self, predict_fn, workdir)


def softmax_loss(logits, batch, weights, smoothing: float = 0.0):
  """Class-weighted (label-smoothed) cross-entropy over the real examples, as
  `torch.nn.CrossEntropyLoss(weight, label_smoothing)` with the mean over weights."""
  k = logits.shape[-1]
  labels = batch["label"].astype(jnp.int32)
  targets = optax.smooth_labels(jax.nn.one_hot(labels, k), smoothing) if smoothing \
      else jax.nn.one_hot(labels, k)
  ce = -jnp.sum(targets * jax.nn.log_softmax(logits), axis=-1)
  w = batch["_mask"] * jnp.asarray(weights)[labels]
  loss = jnp.sum(w * ce) / jnp.maximum(jnp.sum(w), 1e-12)
  mask = batch["_mask"]
  correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  return loss, {"accuracy": jnp.sum(mask * correct) / jnp.maximum(jnp.sum(mask), 1.0)}


def multi_label_loss(logits, batch, pos_weights):
  """Sigmoid BCE per finding, mean over the labels that count (`label_mask` x `_mask`);
  positives weighted by `pos_weights` (K,), as `BCEWithLogitsLoss(pos_weight)`."""
  targets = batch["targets"]
  mask = batch["label_mask"] * batch["_mask"][:, None]
  bce = optax.sigmoid_binary_cross_entropy(logits, targets)
  w = jnp.where(targets > 0.5, jnp.asarray(pos_weights)[None], 1.0)
  loss = jnp.sum(mask * w * bce) / jnp.maximum(jnp.sum(mask), 1.0)
  return loss, {"labels_counted": jnp.sum(mask) / jnp.maximum(jnp.sum(batch["_mask"]), 1.0)}
