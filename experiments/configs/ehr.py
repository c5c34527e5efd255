"""EHR sequence modelling: in-hospital mortality from ICU series or visit codes.

  python experiments/ehr.py --config experiments/configs/ehr.py:p12_grud --workdir /tmp/grud

Presets: quick (synthetic ICU data, GRU, ~1 min on a CPU), p12_gru, p12_grud,
p12_transformer, p12_mtan (PhysioNet 2012 set-a, fold `task.fold` of 5-fold stratified CV),
mimic_demo_retain (RETAIN on the MIMIC-III demo; too small to be meaningful) and
eicu_demo_retain. Any field can be overridden by flag, e.g. `--config.task.fold=2`.
"""

import ml_collections

from medjax.engine.config import base_config

PRESETS = ("quick", "p12_gru", "p12_grud", "p12_transformer", "p12_mtan",
           "mimic_demo_retain", "eicu_demo_retain")


def task_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      dataset="synthetic",  # synthetic | physionet | mimic | eicu
      data_root="",  # "" -> $MEDJAX_SHARED_DATA
      set_dir="physionet2012/set-a",  # relative to data_root, or absolute
      outcomes="",  # "" -> <set_dir>/../Outcomes-<suffix>.txt
      cache_dir="",  # parsed-set cache; "" -> ~/.cache/medjax/ehr
      mimic_dir="mimic3_demo",  # or the full MIMIC-III tables (absolute path)
      eicu_dir="eicu_demo",
      eicu_window_hours=0.0,  # >0: only codes of a stay's first hours (eICU)
      synthetic_stays=2000,
      synthetic_seed=0,
      num_bins=48,
      bin_hours=1.0,
      split="kfold",  # kfold | random
      num_folds=5,
      fold=0,
      repeat=0,  # random splits: which repetition
      test_fraction=0.2,  # random splits
      val_fraction=0.1,  # of the non-test part, for the best checkpoint
      split_seed=0,
      model="gru",  # gru | lstm | grud | transformer | mtan | retain
      hidden=64,
      layers=1,
      heads=4,
      embed_dim=64,
      ref_points=128,  # mtan: reference times over the 48 h, time embedding size, MLP width
      embed_time=128,
      classifier_hidden=300,
      dropout=0.1,
      imbalance="weighted",  # weighted (positive-class loss weight) | oversample | none
      # temperature: risk = sigmoid((logit - offset) / T), T fitted on val (the offset
      # log(positive weight) undoes `imbalance`'s prior shift); none: sigmoid(logit)
      calibration="temperature",
      max_codes=256,  # codes kept per visit
      min_code_count=1,  # training-split count for a code to enter the vocabulary
      pad_multiple=32,  # tokens / codes: pad lengths to a multiple of this
      bucket_pool=16,  # tokens / codes: sort by length within pools of this many batches
      eval_batch_size=0,  # 0 -> batch_size
      report_patient=-1,  # stay / admission id to explain; -1: highest-risk death in test
  ))


def _p12(c, model: str, steps: int):
  """~18 epochs of the 2720 training stays of a fold; the best checkpoint by validation
  AUROC (evaluated every 50 steps) is kept: these models overfit set-a within ~10 epochs."""
  c.task.dataset = "physionet"
  c.task.model = model
  c.task.dropout = 0.3
  c.task.val_fraction = 0.15
  c.optimizer.weight_decay = 1e-2
  c.batch_size = 128
  c.total_steps = steps
  c.eval_every = 50
  c.checkpoint_every = 200
  c.log_every = 50


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
  preset = arg or "quick"
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r} ({', '.join(PRESETS)})")
  c = base_config()
  c.task = task_config()
  c.best_metric = "val/auroc"
  c.best_mode = "max"
  c.optimizer.learning_rate = 1e-3
  c.optimizer.weight_decay = 1e-4
  c.optimizer.warmup_steps = 50
  c.optimizer.grad_clip_norm = 1.0
  if preset == "quick":
    c.task.synthetic_stays = 1200
    c.batch_size = 64
    c.total_steps = 300
    c.eval_every = 100
    c.checkpoint_every = 100
    c.log_every = 50
  elif preset == "p12_gru":
    _p12(c, "gru", 400)
  elif preset == "p12_grud":
    _p12(c, "grud", 400)
  elif preset == "p12_transformer":
    _p12(c, "transformer", 400)
    c.task.layers = 2
    c.task.pad_multiple = 64
    c.optimizer.learning_rate = 5e-4
  elif preset == "p12_mtan":  # mTAND-Enc (Shukla & Marlin 2021): their PhysioNet sizes
    _p12(c, "mtan", 400)
    c.task.update(dict(hidden=128, heads=1, ref_points=128, embed_time=128, pad_multiple=64))
  else:  # RETAIN on a code data set
    c.task.dataset = "mimic" if preset == "mimic_demo_retain" else "eicu"
    c.task.model = "retain"
    c.task.dropout = 0.3
    c.task.split = "random"
    c.task.test_fraction = 0.25
    c.task.val_fraction = 0.2
    c.batch_size = 16 if preset == "mimic_demo_retain" else 64
    c.total_steps = 200 if preset == "mimic_demo_retain" else 600
    c.eval_every = 50
    c.checkpoint_every = 100
    c.log_every = 25
  return c
