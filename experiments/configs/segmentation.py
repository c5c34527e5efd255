"""Segmentation configs: `--config=experiments/configs/segmentation.py:<preset>`.

Presets: quick (synthetic CT phantom, ~1-2 min on a 2-core CPU), lung_ct
(shared lung_ct_2d), drive (DRIVE fundus vessels), folder (a generic image /
mask folder: set --config.task.raw_dir); 3D: quick3d (synthetic volumes),
hippocampus (MSD Task04, or any MSD-style folder with --config.task.raw_dir;
`--mode=plan` proposes the fields for another one). Every field can be
overridden by flag.
"""

import ml_collections

from medjax.engine.config import base_config


def task_config() -> ml_collections.ConfigDict:
  t = ml_collections.ConfigDict()
  t.dataset = "ct_phantom"  # 2D: ct_phantom | lung_ct_2d | drive | image_folder; 3D: msd | volume_phantom
  t.spatial_dims = 2  # 3: volumes (see t.volume)
  t.raw_dir = ""  # raw data directory; default $MEDJAX_SHARED_DATA/<shared_folder or dataset>
  t.shared_folder = ""  # folder name under $MEDJAX_SHARED_DATA, e.g. msd_hippocampus
  t.data_dir = ""  # prepared array_record data; default $MEDJAX_DATA_DIR or ~/.cache/medjax
  t.builder = ml_collections.ConfigDict()  # builder options, e.g. phantom sizes
  t.train_split = "train"
  t.train_count = 0  # k-shot: train on this many examples of train_split (0 = all) ...
  t.train_subset_seed = 0  # ... drawn with this seed (a GAN with the same pair sees the same)
  t.eval_splits = ("val",)
  t.preprocess = "ct"  # ct (HU window) | uint8 (/255)
  t.hu_window = (-1000.0, 400.0)
  t.channels = ()  # uint8 only: channels kept, () = all
  t.num_classes = 2
  t.patch_size = (0, 0)  # random training crops; (0, 0) = whole images
  t.augment = ml_collections.ConfigDict(dict(
      flip=True, rot90=False, rotate_degrees=0.0, intensity_scale=0.0, intensity_shift=0.0,
      # 3D only (spatial_dims=3): rotation (each axis) + scaling in one resampling with
      # affine_probability, nnU-Net's gamma and Gaussian noise, each with a probability.
      scale=0.0, affine_probability=1.0, gamma_range=(0.7, 1.5), gamma_probability=0.0,
      noise_std=0.1, noise_probability=0.0))
  t.model = ml_collections.ConfigDict(dict(
      name="unet",  # unet | resunet (MONAI UNet-like: strided residual units, PReLU)
      features=(32, 64, 128, 256), norm="batch", dropout=0.0, upsample="subpixel",
      deep_supervision=False,
      conv_impl="auto",  # 3D: xla | slices (each 3^3 conv as 2D convs) | auto: slices on CPU
      strides=(), num_res_units=2))  # resunet only: strides () = 2 per level
  t.loss = "dice_ce"  # ce | dice | dice_ce
  t.dice_weight = 1.0
  t.eval_batch_size = 8
  t.sliding_window = ml_collections.ConfigDict(dict(
      roi=(0, 0), overlap=0.5, mode="gaussian", batch_size=16))  # roi (0, 0): whole image
  t.hd95 = True
  t.report_images = 4
  # 2D transfer to other cameras (medjax/segmentation/fov.py, contrast.py). Prediction
  # and evaluation resample each image so its FOV diameter (FOV mask, or the image
  # thresholded at `threshold` x its range) matches training's (recorded in
  # <workdir>/preprocessing.json; train_diameter > 0 overrides it), then resample back.
  t.fov_scale = ml_collections.ConfigDict(dict(enabled=False, train_diameter=0.0,
                                               threshold=0.1))
  # CLAHE (needs scikit-image) in the preprocessing: training and prediction alike.
  t.clahe = ml_collections.ConfigDict(dict(enabled=False, clip_limit=0.01, kernel_size=0))
  t.tta_flips = False  # 2D: average the probabilities over horizontal/vertical flips
  # GAN augmentation (medjax/segmentation/synthetic.py): rows of each training batch
  # replaced by pairs of a randomly deformed real mask and a GAN's image for it.
  t.synthetic = ml_collections.ConfigDict(dict(
      workdir="",  # the GAN run's workdir (medjax.generative); needed when ratio > 0
      ratio=0.0,  # fraction of each training batch replaced by synthetic pairs, in [0, 1)
      max_degrees=15.0,  # mask rotation, uniform in [-max_degrees, max_degrees]
      scale=0.1,  # mask magnification, uniform in [1 - scale, 1 + scale]
      translate=0.05,  # mask shift per axis, uniform in +-translate x the image size
      elastic_alpha=2.0,  # elastic displacement: its RMS per axis, in pixels (0: none)
      elastic_sigma=8.0,  # the displacement field's Gaussian smoothing, in pixels
      flip=True,  # flip the mask along each axis with probability 1/2
  ))
  t.volume = volume_config()
  return t


def volume_config() -> ml_collections.ConfigDict:
  """3D only (spatial_dims=3): preprocessing, patch sampling and evaluation of volumes."""
  return ml_collections.ConfigDict(dict(
      target_spacing=(0.0, 0.0, 0.0),  # mm; zeros: keep each case's spacing
      normalisation="mri",  # mri (per-volume z-score) | ct (dataset percentiles + z) | none
      crop=True,  # crop each case to its non-zero region
      val_fraction=0.2,  # fixed validation subset of the labelled cases
      split_seed=0,
      foreground_fraction=0.33,  # patches centred on a foreground class
      mirror_axes=(),  # test-time mirroring, e.g. (0, 1, 2)
      nsd_tolerance_mm=1.0,  # surface Dice tolerance
      max_eval_cases=0,  # 0: every case of the split
      figures=True,  # best / median / worst case orthogonal slices at the end
  ))


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
  # Flips at evaluation: +0.005 pooled F1 on 37-40 with each of 3 seeds (README).
  c.task.tta_flips = True
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


def _volume(c):
  """3D defaults shared by the volume presets (nnU-Net-like augmentation, Dice+CE)."""
  t = c.task
  t.spatial_dims = 3
  t.augment.update(dict(  # nnU-Net-like, on device; flips on all three axes
      rotate_degrees=15.0, scale=0.15, affine_probability=0.2, gamma_probability=0.3,
      noise_probability=0.1, intensity_scale=0.1, intensity_shift=0.1))
  t.model.norm = "instance"
  t.model.deep_supervision = True
  t.sliding_window.batch_size = 8  # windows per forward pass; the roi is the patch size
  c.optimizer.schedule = "cosine"
  c.best_metric = "val/dice_mean"


def _quick3d(c):
  """Synthetic two-structure volumes: the 3D pipeline end to end in ~1-2 min on CPU."""
  _volume(c)
  t = c.task
  t.dataset = "volume_phantom"
  t.num_classes = 3
  t.builder = ml_collections.ConfigDict(dict(num_cases=16, shape=(32, 40, 24)))
  t.volume.target_spacing = (1.0, 1.0, 1.5)
  t.patch_size = (24, 32, 16)
  t.model.features = (8, 16, 32)
  c.batch_size = 2
  c.total_steps = 200
  c.optimizer.learning_rate = 3e-3
  c.optimizer.warmup_steps = 10
  c.log_every = 25
  c.eval_every = 100
  c.checkpoint_every = 100


def _hippocampus(c):
  """MSD Task04 Hippocampus; the fields are `--mode=plan`'s output for that data."""
  _volume(c)
  t = c.task
  t.dataset = "msd"
  t.shared_folder = "msd_hippocampus"
  t.num_classes = 3
  t.volume.target_spacing = (1.0, 1.0, 1.0)
  t.volume.normalisation = "mri"
  t.patch_size = (40, 56, 40)
  t.model.features = (32, 64, 128, 256)
  c.batch_size = 7  # the plan's 8 GB budget; nnU-Net's 5%-of-the-data cap binds first
  c.total_steps = 4000
  c.optimizer.learning_rate = 3e-3
  c.optimizer.warmup_steps = 100
  c.log_every = 50
  c.eval_every = 1000
  c.checkpoint_every = 250


PRESETS = {"quick": _quick, "lung_ct": _lung_ct, "drive": _drive, "folder": _folder,
           "quick3d": _quick3d, "hippocampus": _hippocampus}


def get_config(preset: str = "quick") -> ml_collections.ConfigDict:
  if preset not in PRESETS:
    raise ValueError(f"unknown segmentation preset {preset!r}; known: {sorted(PRESETS)}")
  c = base_config()
  c.task = task_config()
  PRESETS[preset](c)
  return c
