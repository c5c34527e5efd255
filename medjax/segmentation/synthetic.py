"""GAN augmentation: generated (image, mask) pairs mixed into training batches, on device.

With `task.synthetic.ratio` > 0, the first round(ratio x B) rows of each training
batch (at least one; halves round up) are replaced by synthetic pairs: the
masks are the batch's own real masks, rows permuted and randomly deformed
(`medjax.generative.labels.random_label_maps`), the images what the GAN of
`task.synthetic.workdir` makes for them. The GAN is loaded on first use (when
the train step traces), so predicting from a finished run never needs it.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

from medjax.engine.errors import InputError
from medjax.generative import labels as labels_lib

_DEFORM_FIELDS = ("max_degrees", "scale", "translate", "elastic_alpha", "elastic_sigma")


def load_generator(workdir: str):
  """`medjax.generative.sampling.load_generator`, imported on use (tests replace it)."""
  from medjax.generative import sampling  # pylint: disable=import-outside-toplevel
  return sampling.load_generator(workdir)


def options(task_config):
  """`task.synthetic`, checked; None when absent (configs saved before it) or ratio 0."""
  s = task_config.get("synthetic")
  if s is None or s.ratio == 0:
    return None
  if not 0 <= s.ratio < 1:
    raise InputError(f"config.task.synthetic.ratio must be in [0, 1) (the fraction of "
                     f"each training batch replaced by generated pairs), got {s.ratio}")
  if not s.workdir:
    raise InputError(f"config.task.synthetic.ratio is {s.ratio} but "
                     "config.task.synthetic.workdir is empty: set it to a GAN run's workdir")
  for field in _DEFORM_FIELDS:
    if s[field] < 0:
      raise InputError(f"config.task.synthetic.{field} must be >= 0, got {s[field]}")
  if s.elastic_alpha and not s.elastic_sigma:
    raise InputError("config.task.synthetic.elastic_sigma must be > 0 when elastic_alpha "
                     f"is set (got elastic_alpha={s.elastic_alpha}, elastic_sigma=0)")
  return s


def synthetic_rows(ratio: float, batch_size: int) -> int:
  """round(ratio x batch_size), halves up, at least 1 when ratio > 0, and at most
  batch_size - 1: every batch keeps a real row."""
  if ratio <= 0:
    return 0
  if batch_size < 2:
    raise InputError(f"config.task.synthetic.ratio={ratio} needs batches of 2 or more "
                     f"rows per device batch (got {batch_size}): one real, one generated")
  return min(batch_size - 1, max(1, int(ratio * batch_size + 0.5)))


def _expected(task_config) -> dict:
  """The fields of a segmentation config that a generator must have been trained with."""
  c = task_config
  clahe = c.get("clahe")
  out = {"spatial_dims": c.get("spatial_dims", 2), "preprocess": c.preprocess,
         "clahe.enabled": bool(clahe is not None and clahe.enabled)}
  if c.preprocess == "ct":
    out["hu_window"] = tuple(float(v) for v in c.hu_window)
  elif c.preprocess == "uint8":
    out["channels"] = tuple(int(v) for v in c.channels)
  return out


_SAME_IMAGES = ("dataset", "train_split", "train_count", "train_subset_seed")


def _training_images(c) -> dict:
  """What picks a config's training images (the GAN must have seen only those)."""
  out = {f: c.get(f, d) for f, d in zip(_SAME_IMAGES, ("", "train", 0, 0))}
  raw = c.get("raw_dir", "")
  out["raw_dir"] = os.path.realpath(raw) if raw else ""
  builder = c.get("builder")  # e.g. a phantom's sizes and seed
  out["builder"] = builder.to_dict() if builder is not None else {}
  return out


def check_generator(task_config, generator, workdir: str) -> None:
  """InputError naming both values where `generator` (trained on the segmentation
  config `generator.config.task.data`) does not fit `task_config`: other classes or
  preprocessing, or other training images (a GAN that saw images the segmentation
  run must not see would leak them)."""
  where = f"the GAN of config.task.synthetic.workdir={workdir!r}"
  mine, gans = _training_images(task_config), _training_images(generator.config.task.data)
  for field, value in mine.items():
    if gans[field] != value:
      raise InputError(f"config.task.{field}={value!r} but {where} was trained with "
                       f"config.task.data.{field}={gans[field]!r}: the GAN must be "
                       "trained on the same training images")
  if int(generator.num_classes) != int(task_config.num_classes):
    raise InputError(f"config.task.num_classes={task_config.num_classes} does not match "
                     f"{where} ({generator.num_classes} classes)")
  gan = _expected(generator.config.task.data)
  for field, value in _expected(task_config).items():
    if gan.get(field) != value:
      raise InputError(f"config.task.{field}={value!r} does not match {where} (its "
                       f"config.task.data.{field}={gan.get(field)!r}): synthetic images "
                       "must be preprocessed as the real ones")
  channels = 1 if task_config.preprocess == "ct" else len(task_config.channels)
  if channels and int(generator.channels) != channels:
    raise InputError(f"config.task: the images have {channels} channel(s) (preprocess "
                     f"{task_config.preprocess!r}, channels {tuple(task_config.channels)}) "
                     f"but {where} makes {generator.channels}")


class Mixer:
  """Replaces rows of training batches by generated pairs (see the module docstring)."""

  def __init__(self, task_config):
    self.config = task_config
    self.options = options(task_config)
    self._generator = None
    self._params = None

  @property
  def enabled(self) -> bool:
    return self.options is not None

  def load(self):
    """The GAN, loaded and checked on first use (`prepare`, else the train step's
    trace); its parameters kept as device arrays, constants of the jitted step."""
    if self._generator is None:
      with jax.ensure_compile_time_eval():  # concrete arrays even when called in a trace
        generator = load_generator(self.options.workdir)
        check_generator(self.config, generator, self.options.workdir)
        self._params = jax.tree.map(jnp.asarray, generator.params)
      self._generator = generator
    return self._generator

  def labels(self, batch, order_key: jax.Array, deform_key: jax.Array) -> jax.Array:
    """Deformed copies of the batch's real masks, in random order, one per synthetic
    row, and of their valid regions (deformed together: label * 2 + valid)."""
    n = synthetic_rows(self.options.ratio, batch["label"].shape[0])
    scores = jax.random.uniform(order_key, batch["label"].shape[:1])
    if "_mask" in batch:  # real rows first (training batches have no padding, but still)
      scores = scores + 2.0 * (batch["_mask"] <= 0)
    rows = jnp.argsort(scores)[:n]
    s = self.options
    valid = (batch["valid"][rows] > 0 if "valid" in batch
             else jnp.ones(batch["label"][rows].shape, bool))
    both = labels_lib.random_label_maps(
        batch["label"][rows] * 2 + valid.astype(batch["label"].dtype), deform_key,
        max_degrees=s.max_degrees, scale=s.scale,
        translate=s.translate, elastic_alpha=s.elastic_alpha, elastic_sigma=s.elastic_sigma,
        flip=s.get("flip", True))
    return both // 2, both % 2

  def mix(self, batch, key: jax.Array):
    """`batch` with its first `synthetic_rows` rows generated pairs: image from the
    GAN, label a deformed real mask, valid its deformed valid region, _mask 1; other
    keys unchanged."""
    generator = self.load()
    # One split: each threefry call site costs XLA:CPU ~0.5 s to compile.
    order_key, deform_key, image_key = jax.random.split(key, 3)
    labels, valid = self.labels(batch, order_key, deform_key)
    images = generator.generate(self._params, labels, image_key)
    image = batch["image"]
    expected = labels.shape + image.shape[-1:]
    if tuple(images.shape) != expected:
      raise InputError(f"the GAN of config.task.synthetic.workdir={self.options.workdir!r} "
                       f"made images of shape {tuple(images.shape)} for label maps "
                       f"{tuple(labels.shape)}; the training batches need {expected}")
    n = labels.shape[0]
    out = dict(batch)
    out["image"] = image.at[:n].set(images.astype(image.dtype))
    out["label"] = batch["label"].at[:n].set(labels.astype(batch["label"].dtype))
    if "valid" in batch:  # the real row's valid region (a fundus FOV), deformed alike
      out["valid"] = batch["valid"].at[:n].set(valid.astype(batch["valid"].dtype))
    if "_mask" in batch:
      out["_mask"] = batch["_mask"].at[:n].set(1)
    return out
