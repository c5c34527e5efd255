"""The segmentation task: U-Net, Dice/CE losses, pixel metrics, TFDS + grain input.

Built from `config.task` (see experiments/configs/segmentation.py for the fields).
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from medjax.engine import workdir as workdir_lib
from medjax.engine.errors import InputError
from medjax.engine.task import Evaluator, Task
from medjax.segmentation import contrast
from medjax.segmentation import fov
from medjax.segmentation import inference
from medjax.segmentation import losses
from medjax.segmentation import metrics as metrics_lib
from medjax.segmentation import report
from medjax.segmentation import conv3d
from medjax.segmentation import resunet
from medjax.segmentation import synthetic
from medjax.segmentation import transforms
from medjax.segmentation import unet
from medjax.segmentation.data import pipeline
from medjax.segmentation.data import sources
from medjax.segmentation.data import subset

_RAW_FOLDERS = {"lung_ct_2d": "lung_ct_2d", "drive": "drive"}
LOSSES = ("ce", "dice", "dice_ce")


def default_data_dir() -> str:
  """Where prepared (array_record) datasets go: $MEDJAX_DATA_DIR or ~/.cache/medjax."""
  return os.environ.get("MEDJAX_DATA_DIR",
                        os.path.join(os.path.expanduser("~"), ".cache", "medjax", "tfds"))


def raw_dir_for(task_config) -> str | None:
  """`task.raw_dir`, else $MEDJAX_SHARED_DATA/<task.shared_folder or the dataset's folder>."""
  if task_config.raw_dir:
    return task_config.raw_dir
  folder = task_config.shared_folder or _RAW_FOLDERS.get(task_config.dataset)
  if folder and "MEDJAX_SHARED_DATA" in os.environ:
    return os.path.join(os.environ["MEDJAX_SHARED_DATA"], folder)
  if task_config.dataset in ("ct_phantom", "volume_phantom"):
    return None
  raise InputError(f"config.task.raw_dir is empty: set it (or $MEDJAX_SHARED_DATA) to the "
                   f"directory of the {task_config.dataset!r} data")


def make_preprocess(task_config):
  """`task.preprocess` (intensities to float), then CLAHE when `task.clahe.enabled`."""
  preprocess = _intensity_preprocess(task_config)
  if "clahe" in task_config:  # absent from configs saved before it existed
    preprocess = contrast.with_clahe(preprocess, task_config.clahe)
  return preprocess


def _intensity_preprocess(task_config):
  if task_config.preprocess == "ct":
    low, high = task_config.hu_window
    return functools.partial(pipeline.ct_preprocess, low=low, high=high)
  if task_config.preprocess == "uint8":
    channels = tuple(task_config.channels) or None
    return functools.partial(pipeline.uint8_preprocess, channels=channels)
  raise InputError(f"config.task.preprocess: unknown {task_config.preprocess!r} "
                   "(known: ct, uint8)")


MODELS = ("unet", "resunet")


def make_model(task_config, compute_dtype: str = "float32"):
  """`task.model.name`: 'unet' (unet.UNet) or 'resunet' (resunet.ResUNet)."""
  m = task_config.model
  name = m.get("name", "unet")
  if name == "resunet":
    return _make_resunet(task_config, compute_dtype)
  if name != "unet":
    raise InputError(f"config.task.model.name: unknown {name!r} (known: {MODELS})")
  return unet.UNet(num_classes=task_config.num_classes, spatial_dims=task_config.spatial_dims,
                   features=tuple(m.features), norm=m.norm, dropout=m.dropout,
                   dtype=jnp.dtype(compute_dtype), upsample=m.upsample,
                   deep_supervision=m.deep_supervision, conv_impl=_conv_impl(m.conv_impl))


def _make_resunet(task_config, compute_dtype: str) -> resunet.ResUNet:
  m = task_config.model
  if m.deep_supervision:
    raise InputError("config.task.model.deep_supervision: the residual U-Net has none; "
                     "set --config.task.model.deep_supervision=False")
  model = resunet.ResUNet(num_classes=task_config.num_classes,
                          spatial_dims=task_config.spatial_dims, channels=tuple(m.features),
                          strides=tuple(m.strides), num_res_units=m.num_res_units,
                          norm=m.norm, dropout=m.dropout, dtype=jnp.dtype(compute_dtype),
                          upsample=m.upsample)
  model.level_strides()  # bad strides stop here, before any data is read
  return model


def _conv_impl(name: str) -> str:
  return conv3d.resolve(name)


# Fields of config.task that a prediction command may change; the rest (model,
# preprocessing, classes) come from the config the workdir was trained with.
PREDICTION_FIELDS = ("sliding_window", "eval_batch_size", "report_images", "fov_scale",
                     "tta_flips")


def config_for_prediction(config, workdir: str):
  """`config` with `task` replaced by the workdir's saved training `task` config
  (`config.json`), except PREDICTION_FIELDS and `volume.mirror_axes` (test-time
  options), so that no training override has to be repeated. Unchanged when the
  workdir has no saved config (runs from before it was saved)."""
  saved = workdir_lib.load_config(workdir)
  if saved is None or "task" not in saved:
    return config
  task = saved.task
  for field in PREDICTION_FIELDS:
    task[field] = config.task[field]
  for field in config.task.keys():  # fields added since the run (e.g. clahe): defaults
    if field not in task:
      task[field] = config.task[field]
  if "volume" in task:
    task.volume.mirror_axes = tuple(config.task.volume.mirror_axes)
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.task = task
  return config


def make_task(task_config, compute_dtype: str = "float32"):
  """The 2D task, or the volume task (`medjax.segmentation.volumes`) for spatial_dims 3."""
  if task_config.spatial_dims == 3:
    from medjax.segmentation.volumes import task as volume_task  # pylint: disable=import-outside-toplevel
    return volume_task.VolumeSegmentationTask(task_config, compute_dtype)
  if task_config.spatial_dims != 2:
    raise InputError(f"config.task.spatial_dims must be 2 or 3, got {task_config.spatial_dims}")
  return SegmentationTask(task_config, compute_dtype)


def predict_images(task_config, predict_fn, images):
  """Logits for whole images: one forward pass, or sliding windows when `roi` is set;
  with `task.tta_flips`, log of the softmax probabilities averaged over the image
  flipped along each subset of its two axes (4 passes)."""
  if task_config.get("tta_flips", False):
    probs = inference.mirrored(
        functools.partial(_predict_once, task_config, predict_fn), (0, 1))(
            np.asarray(images))
    return np.log(np.maximum(probs, 1e-30))
  return _predict_once(task_config, predict_fn, images)


def _predict_once(task_config, predict_fn, images):
  roi = tuple(task_config.sliding_window.roi)
  if not any(roi):
    return predict_fn({"image": images})
  window = task_config.sliding_window
  return inference.sliding_window_host(
      images, roi, lambda windows: predict_fn({"image": windows}), overlap=window.overlap,
      mode=window.mode, sw_batch_size=window.batch_size)


class SegmentationEvaluator(Evaluator):
  """Whole-image (optionally sliding-window) prediction over one split; pixel metrics
  and the training loss on whole images (the engine cannot score image windows)."""

  reports_loss = True

  def __init__(self, name, source, preprocess, task_config, loss_fn=None):
    self.name, self.source, self.preprocess = name, source, preprocess
    self.config = task_config
    self.loss_fn = loss_fn  # (logits, batch) -> (loss, terms): the training loss

  def predict_images(self, predict_fn, images):
    return predict_images(self.config, predict_fn, images)

  def batches(self):
    return pipeline.eval_batches(self.source, self.preprocess, self.config.eval_batch_size)

  def run(self, predict_fn):
    acc = metrics_lib.SegmentationMetrics(self.config.num_classes,
                                          compute_hd95=self.config.hd95)
    loss_sum = weight = 0.0
    for batch in self.batches():
      logits = self.predict_images(predict_fn, batch["image"])
      acc.update(logits, batch["label"], batch["valid"], batch["_mask"])
      if self.loss_fn is not None:  # on whole images, weighted by real images
        n = float(np.sum(batch["_mask"]))
        loss_sum += n * float(self.loss_fn(jnp.asarray(logits), batch)[0])
        weight += n
    yield from acc.aggregate().items()
    if weight:
      yield "loss", loss_sum / weight


class SegmentationTask(Task):
  """2D semantic segmentation of medical images."""

  native_precision = True  # the U-Net takes compute_dtype itself (norms stay float32)

  def __init__(self, task_config, compute_dtype: str = "float32"):
    if task_config.loss not in LOSSES:
      raise InputError(f"config.task.loss: unknown {task_config.loss!r} (known: {LOSSES})")
    self.config = task_config
    self.model = make_model(task_config, compute_dtype)
    self.preprocess = make_preprocess(task_config)
    synthetic.options(task_config)  # bad task.synthetic fields fail here, not at the step

  def _source(self, split):
    c = self.config
    return sources.load_source(c.dataset, split, data_dir=c.data_dir or default_data_dir(),
                               raw_dir=raw_dir_for(c), **c.builder.to_dict())

  @functools.cached_property
  def train_source(self):
    """The training split, or `task.train_count` of its examples (k-shot runs)."""
    c = self.config
    return subset.take(self._source(c.train_split), c.get("train_count", 0),
                       c.get("train_subset_seed", 0))

  @functools.cached_property
  def eval_sources(self):
    return {split: self._source(split) for split in self.config.eval_splits}

  def prepare(self):
    """Prepares (if needed) and opens every split now, so that bad data fails early;
    loads the GAN of `task.synthetic` (training only: prediction never needs it)."""
    if self.mixer.enabled:
      self.mixer.load()
    return self.train_source, self.eval_sources

  def in_channels(self) -> int:
    c = self.config
    if c.preprocess == "ct":
      return 1
    if c.channels:
      return len(c.channels)
    return self.preprocess(self.train_source[0])["image"].shape[-1]

  def predict_images(self, predict_fn, images):
    return predict_images(self.config, predict_fn, images)

  def model_inputs(self, batch):
    return {"image": batch["image"]}

  def loss(self, outputs, batch):
    kw = dict(mask=batch["valid"], example_weight=batch["_mask"])
    ce = losses.cross_entropy(outputs, batch["label"], **kw)
    dice = losses.soft_dice(outputs, batch["label"], **kw)
    total = {"ce": ce, "dice": dice,
             "dice_ce": self.config.dice_weight * dice + ce}[self.config.loss]
    return total, {"ce": ce, "soft_dice_loss": dice}

  @functools.cached_property
  def mixer(self) -> synthetic.Mixer:
    """Mixes GAN pairs into training batches (`task.synthetic`); loads the GAN on use."""
    return synthetic.Mixer(self.config)

  def update(self, state, batch, key, ctx):
    """The default gradient step; with `task.synthetic.ratio` > 0, the batch is
    augmented (cropped) first, then that fraction of its rows is replaced by
    generated pairs (`synthetic.Mixer`: the generator runs at the crop size), and the
    gradient step skips its own augmentation."""
    if not self.mixer.enabled:
      return ctx.gradient_step(state, batch, key)
    augment_key, mix_key, step_key = jax.random.split(key, 3)
    batch = self.mixer.mix(self.augment(batch, augment_key), mix_key)
    return ctx.gradient_step(state, batch, step_key, augment=False)

  def augment(self, batch, key):
    a = self.config.augment
    steps = []
    if any(self.config.patch_size):
      steps.append(functools.partial(transforms.random_crop, size=tuple(self.config.patch_size)))
    if a.flip:
      steps.append(transforms.random_flip)
    if a.rot90:
      steps.append(transforms.random_rot90)
    if a.rotate_degrees:
      steps.append(functools.partial(transforms.random_rotate, max_degrees=a.rotate_degrees))
    if a.intensity_scale or a.intensity_shift:
      steps.append(functools.partial(transforms.random_intensity, scale=a.intensity_scale,
                                     shift=a.intensity_shift))
    return transforms.compose(*steps)(batch, key) if steps else batch

  def train_dataset(self, batch_size, seed, shard_index=0, shard_count=1):
    return pipeline.train_dataset(self.train_source, self.preprocess, batch_size, seed,
                                  shard_index, shard_count)

  def example_batch(self, batch_size):
    """Parameter shapes depend only on the channels; the size is the patch or 64x64."""
    size = tuple(self.config.patch_size) if any(self.config.patch_size) else (64, 64)
    return {"image": np.zeros((batch_size, *size, self.in_channels()), np.float32)}

  def evaluators(self):
    return [SegmentationEvaluator(split, source, self.preprocess, self.config, self.loss)
            for split, source in self.eval_sources.items()]

  def write_run_files(self, workdir) -> None:
    """`<workdir>/preprocessing.json`: the training images' FOV diameter, the scale
    that `task.fov_scale` matches at prediction."""
    record = fov.training_diameter(self.train_source, self.config.fov_scale.threshold)
    fov.write_preprocessing(workdir, record)

  def predict_folder(self, config, workdir, input_dir, output_dir,
                     probabilities: str = "none") -> list[str]:
    """Masks (and `probabilities` maps) for every image of `input_dir` (see
    `segmentation.predict`)."""
    from medjax.segmentation import predict  # pylint: disable=import-outside-toplevel
    return predict.predict_folder(config, workdir, self, input_dir, output_dir,
                                  probabilities=probabilities)

  def evaluate_folder(self, config, workdir, input_dir, label_dir, output_dir,
                      fov_dir=None) -> dict:
    """Metrics on a labelled folder (see `segmentation.evaluate`)."""
    from medjax.segmentation import evaluate  # pylint: disable=import-outside-toplevel
    return evaluate.evaluate_folder(config, workdir, self, input_dir, label_dir, output_dir,
                                    fov_dir=fov_dir)

  def plan(self, workdir, memory_mb):
    del workdir, memory_mb
    raise InputError("--mode=plan plans 3D volume datasets: use a 3D preset (e.g. "
                     "hippocampus) or --config.task.spatial_dims=3 with dataset msd")

  def report(self, predict_fn, workdir):
    if not self.eval_sources:
      return {}
    evaluator = self.evaluators()[0]
    return report.write_overlays(evaluator, predict_fn, workdir,
                                 self.config.report_images)
