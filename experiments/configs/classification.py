"""Classification configs: `--config=experiments/configs/classification.py:<preset>`.

Presets: quick (synthetic blobs vs rings, no download, ~1 min on a 2-core CPU),
pneumonia_resnet18 / pneumonia_densenet121 (the Kermany paediatric chest X-ray
folder, 224x224 grey, validation grouped by patient), adrenal3d_resnet18
(AdrenalMNIST3D 28^3 .npz), seed_cnn (the seed's small CNN on the same chest X-ray
folder), csv (a CheXpert / NIH-style CSV of image paths and findings: set
--config.task.raw_dir and --config.task.builder.label_columns). Every field can
be overridden by flag.
"""

import ml_collections

from medjax.engine.config import base_config

CHEXPERT_COMPETITION = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
                        "Pleural Effusion")


def task_config() -> ml_collections.ConfigDict:
  t = ml_collections.ConfigDict()
  t.dataset = "shapes"  # shapes | image_folder | medmnist | csv
  t.spatial_dims = 2  # 3: volumes (medmnist 3D)
  t.raw_dir = ""  # folder (image_folder), .npz (medmnist) or .csv (csv)
  t.shared_folder = ""  # default raw_dir: $MEDJAX_SHARED_DATA/<shared_folder>/<shared_file>
  t.shared_file = ""
  t.data_dir = ""  # prepared array_record data; default $MEDJAX_DATA_DIR or ~/.cache/medjax
  # Builder options (see medjax/classification/data/builders.py), e.g. image_folder:
  # classes, channels, size, val_fraction, group_pattern, split_seed; csv: label_columns,
  # path_column, image_root, findings_column, group_column, val_csv.
  t.builder = ml_collections.ConfigDict()
  t.train_split = "train"
  t.val_split = "val"  # chooses the decision threshold and the best checkpoint
  t.test_split = "test"  # evaluated once at the end, when the data have it
  t.model = ml_collections.ConfigDict(dict(
      name="resnet18",  # resnet18 | resnet50 | densenet121 | seed_cnn
      dropout=0.0,
      # Fields of the model (see medjax/classification/models): each preset declares
      # those of its model, so that flags can set them, e.g. --config.task.model.kwargs.width=0.5
      kwargs=ml_collections.ConfigDict(dict(width=1.0))))
  t.label_smoothing = 0.0  # single-label only
  t.class_weighting = "none"  # none | balanced (classes N/(K n_c); findings n_neg/n_pos)
  t.sampling = "shuffle"  # shuffle | balanced (classes drawn equally often; single-label)
  t.uncertain_policy = "ignore"  # multi-label -1 labels: ones | zeros | ignore (masked)
  t.augment = ml_collections.ConfigDict(dict(
      flip_axes=(),  # spatial axes flipped with probability 1/2 (1 = rows, 2 = columns)
      rotate_degrees=0.0, scale=0.0, affine_probability=1.0,
      intensity_scale=0.0, intensity_shift=0.0))
  t.eval_batch_size = 32
  t.bootstrap = 1000  # resamples for the 95% CIs of the end-of-run report (0: none)
  return t


_MODEL_FIELDS = {  # the architecture fields a preset exposes, with their defaults
    "resnet18": dict(width=1.0, small_input=False, conv_impl="auto"),
    "densenet121": dict(width=1.0, small_input=False, growth_rate=32,
                        block_config=(6, 12, 24, 16), bn_size=4),
    "seed_cnn": dict(width=1.0, features=(32, 64, 128), hidden=128),
}


def _model(t, name: str, **fields):
  t.model.name = name
  t.model.kwargs = ml_collections.ConfigDict({**_MODEL_FIELDS[name], **fields})


def _quick(c):
  t = c.task
  t.builder = ml_collections.ConfigDict(dict(num_train=256, num_val=64, size=32, seed=0))
  _model(t, "seed_cnn", features=(8, 16, 32), hidden=32)
  t.augment.flip_axes = (1, 2)
  c.batch_size = 16
  c.total_steps = 200
  c.optimizer.learning_rate = 3e-3
  c.optimizer.warmup_steps = 10
  c.log_every = 25
  c.eval_every = 100
  c.checkpoint_every = 100
  c.best_metric = "val/roc_auc_macro"


def _pneumonia(c, model: str):
  """Kermany chest X-rays: 224x224 grey, val = 10% of train by patient, AUROC-selected."""
  t = c.task
  t.dataset = "image_folder"
  t.shared_folder = "chest_xray_pneumonia_224"
  t.builder = ml_collections.ConfigDict(dict(channels=1, size=(224, 224), val_fraction=0.1,
                                             split_seed=0))
  _model(t, model)
  t.class_weighting = "balanced"  # 26% normal / 74% pneumonia
  t.augment.rotate_degrees = 10.0
  t.augment.scale = 0.1
  t.augment.intensity_scale = 0.1
  t.augment.intensity_shift = 0.05
  t.eval_batch_size = 32
  c.batch_size = 32
  c.total_steps = 3000
  c.optimizer.learning_rate = 1e-3
  c.optimizer.warmup_steps = 100
  c.log_every = 50
  c.eval_every = 500
  c.checkpoint_every = 500
  c.best_metric = "val/roc_auc_macro"


def _adrenal3d(c):
  """AdrenalMNIST3D 28^3 (binary shape masks), official train / val."""
  t = c.task
  t.dataset = "medmnist"
  t.spatial_dims = 3
  t.shared_folder = "adrenalmnist3d"
  t.shared_file = "adrenalmnist3d_trainval.npz"
  t.builder = ml_collections.ConfigDict(dict(classes=("normal", "mass")))
  # The ImageNet stem (28^3 -> 7^3 before stage 1) at half width: on a 2-core CPU a step
  # of the 3^d stride-1 stem (small_input=True) at full width costs ~20x more.
  _model(t, "resnet18", width=0.5)
  t.class_weighting = "balanced"  # 22% mass
  t.augment.flip_axes = (1, 2, 3)
  t.augment.rotate_degrees = 15.0
  c.batch_size = 32
  c.total_steps = 600  # ~16 epochs of the 1188 training volumes
  c.optimizer.learning_rate = 1e-3
  c.optimizer.warmup_steps = 30
  c.log_every = 25
  c.eval_every = 100
  c.checkpoint_every = 100
  c.best_metric = "val/roc_auc_macro"


def _seed_cnn(c):
  _pneumonia(c, "seed_cnn")


def _csv(c):
  """A CheXpert-style CSV: Path + one column per finding (1 / 0 / -1 / blank)."""
  t = c.task
  t.dataset = "csv"
  t.builder = ml_collections.ConfigDict(dict(
      label_columns=CHEXPERT_COMPETITION, path_column="Path", image_root="", val_csv="",
      findings_column="", group_column="", channels=1, size=(224, 224), val_fraction=0.1))
  _model(t, "densenet121")
  t.uncertain_policy = "ones"  # CheXpert's U-Ones
  t.augment.rotate_degrees = 10.0
  t.augment.scale = 0.1
  c.batch_size = 32
  c.total_steps = 5000
  c.optimizer.learning_rate = 1e-4
  c.optimizer.warmup_steps = 100
  c.log_every = 50
  c.eval_every = 500
  c.checkpoint_every = 500
  c.best_metric = "val/roc_auc_macro"


PRESETS = {"quick": _quick,
           "pneumonia_resnet18": lambda c: _pneumonia(c, "resnet18"),
           "pneumonia_densenet121": lambda c: _pneumonia(c, "densenet121"),
           "adrenal3d_resnet18": _adrenal3d, "seed_cnn": _seed_cnn, "csv": _csv}


def get_config(preset: str = "quick") -> ml_collections.ConfigDict:
  if preset not in PRESETS:
    raise ValueError(f"unknown classification preset {preset!r}; known: {sorted(PRESETS)}")
  c = base_config()
  c.task = task_config()
  PRESETS[preset](c)
  return c
