"""Segmentation configs: `--config=experiments/configs/segmentation.py:<preset>`.

Presets: quick (synthetic CT phantom, ~1-2 min on a 2-core CPU), lung_ct
(shared lung_ct_2d), drive (DRIVE fundus vessels), folder (a generic image /
mask folder: set --config.task.raw_dir). Every field can be overridden by flag.
"""

import ml_collections

from medjax.engine.config import base_config


def task_config() -> ml_collections.ConfigDict:
  t = ml_collections.ConfigDict()
  t.dataset = "ct_phantom"  # ct_phantom | lung_ct_2d | drive | image_folder
  t.raw_dir = ""  # raw data directory; default $MEDJAX_SHARED_DATA/<dataset>
  t.data_dir = ""  # prepared array_record data; default $MEDJAX_DATA_DIR or ~/.cache/medjax
  t.builder = ml_collections.ConfigDict()  # builder options, e.g. phantom sizes
  t.train_split = "train"
  t.eval_splits = ("val",)
  t.preprocess = "ct"  # ct (HU window) | uint8 (/255)
  t.hu_window = (-1000.0, 400.0)
  t.channels = ()  # uint8 only: channels kept, () = all
  t.num_classes = 2
  t.patch_size = (0, 0)  # random training crops; (0, 0) = whole images
  t.augment = ml_collections.ConfigDict(dict(
      flip=True, rot90=False, rotate_degrees=0.0, intensity_scale=0.0, intensity_shift=0.0))
  t.model = ml_collections.ConfigDict(dict(
      features=(32, 64, 128, 256), norm="batch", dropout=0.0, upsample="subpixel"))
  t.loss = "dice_ce"  # ce | dice | dice_ce
  t.dice_weight = 1.0
  t.eval_batch_size = 8
  t.sliding_window = ml_collections.ConfigDict(dict(
      roi=(0, 0), overlap=0.5, mode="gaussian", batch_size=16))  # roi (0, 0): whole image
  t.hd95 = True
  t.report_images = 4
  return t


def _quick(c):
  c.task.builder = ml_collections.ConfigDict(dict(num_train=256, num_val=32, size=96))
  c.task.model.features = (8, 16, 32, 64)
  c.batch_size = 8
  c.total_steps = 300
  c.optimizer.learning_rate = 3e-3
  c.optimizer.warmup_steps = 20
  c.log_every = 25
  c.eval_every = 100
  c.checkpoint_every = 100


def _lung_ct(c):
  c.task.dataset = "lung_ct_2d"
  c.task.hu_window = (-1000.0, 400.0)
  c.task.model.features = (16, 32, 64, 128)
  c.task.augment.rotate_degrees = 10.0
  c.batch_size = 8
  c.total_steps = 1500
  c.optimizer.learning_rate = 2e-3
  c.optimizer.warmup_steps = 50
  c.log_every = 50
  c.eval_every = 250
  c.checkpoint_every = 250
  c.best_metric = "val/dice"


def _drive(c):
  c.task.dataset = "drive"
  c.task.preprocess = "uint8"
  c.task.channels = (1,)  # green channel: the usual vessel contrast
  c.task.patch_size = (96, 96)
  c.task.augment.rot90 = True
  c.task.augment.intensity_scale = 0.1
  c.task.augment.intensity_shift = 0.05
  c.task.model.features = (16, 32, 64, 128)
  c.task.sliding_window.roi = (96, 96)
  c.task.eval_batch_size = 4
  c.task.hd95 = False
  c.batch_size = 16
  c.total_steps = 3000
  c.optimizer.learning_rate = 2e-3
  c.optimizer.warmup_steps = 100
  c.log_every = 50
  c.eval_every = 500
  c.checkpoint_every = 500
  c.best_metric = "val/pooled_f1"


def _folder(c):
  c.task.dataset = "image_folder"
  c.task.preprocess = "uint8"


PRESETS = {"quick": _quick, "lung_ct": _lung_ct, "drive": _drive, "folder": _folder}


def get_config(preset: str = "quick") -> ml_collections.ConfigDict:
  if preset not in PRESETS:
    raise ValueError(f"unknown segmentation preset {preset!r}; known: {sorted(PRESETS)}")
  c = base_config()
  c.task = task_config()
  PRESETS[preset](c)
  return c
