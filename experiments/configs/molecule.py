"""Molecular property prediction (D-MPNN / GIN / AttentiveFP).

  python experiments/molecule.py --config experiments/configs/molecule.py:esol \
      --workdir /tmp/esol --config.task.repeats=3

Presets: quick (RDKit's 5k NCI TPSA file, ~1 min on a CPU), esol, lipo, bbbp,
tox21; any of them with `,smoke` for a one-step run. MoleculeNet files are read
from `task.data_dir` (default $MEDJAX_SHARED_DATA/moleculenet).
"""

import ml_collections

from medjax.engine import config as engine_config


def task_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      dataset="tpsa",  # tpsa | esol | freesolv | lipo | bbbp | tox21 | sider | clintox | hiv | csv
      data_dir="",  # MoleculeNet folder; '' -> $MEDJAX_SHARED_DATA/moleculenet
      csv_path="",  # dataset=csv: the file, its SMILES column and target columns
      smiles_column="smiles",
      target_columns="",  # comma-separated; '' -> every other column
      task_type="regression",  # dataset=csv: regression | binary | multiclass
      num_classes=0,  # multiclass; 0 -> max label + 1
      cache_dir="",  # featurised arrays; '' -> $MEDJAX_CACHE or ~/.cache/medjax/molecule
      split="random",  # random | scaffold (Chemprop) | scaffold_sorted (DeepChem) | stratified
      split_fractions=(0.8, 0.1, 0.1),
      split_seed=0,
      folds=0,  # > 1: k-fold; repeat r uses fold r as test, r + 1 as val
      fold=0,
      repeats=1,  # runs with seed + r and split_seed + r (or fold r); mean +- sd
      model="dmpnn",  # dmpnn | gin | attentivefp
      hidden=300,
      depth=3,
      dropout=0.0,
      readout="mean",  # sum | mean | attention | gru_attention
      head_hidden=300,
      head_layers=2,
      descriptors=False,  # RDKit 2D descriptors (normalised on train) into the head
      blocks=0,  # padded graph blocks per batch; 0 -> local device count
      node_slack=1.15,  # block budget: graphs x mean atoms (edges) x slack
  ))


def _epochs(config, train_molecules: int, epochs: int) -> None:
  steps = max(1, round(epochs * train_molecules / config.batch_size))
  config.total_steps = steps
  config.optimizer.warmup_steps = max(1, steps // 15)  # ~2 of 30 epochs, as Chemprop
  config.eval_every = max(1, steps // epochs)  # once an epoch
  config.checkpoint_every = max(1, steps // 10)
  config.log_every = max(1, steps // 50)


PRESETS = {
    # dataset, split, training molecules (80 %: sets steps per epoch), epochs
    "quick": ("tpsa", "random", 3993, 6),
    "esol": ("esol", "random", 902, 100),
    "lipo": ("lipo", "random", 3360, 40),
    "bbbp": ("bbbp", "scaffold", 1631, 40),
    "tox21": ("tox21", "random", 6258, 30),
}


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
  preset, *options = arg.split(",")
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r}; one of {sorted(PRESETS)}")
  if set(options) - {"smoke"}:
    raise ValueError(f"unknown options {options}; known: smoke")
  dataset, split, train_molecules, epochs = PRESETS[preset]
  config = engine_config.base_config()
  config.task = task_config()
  config.task.dataset, config.task.split = dataset, split
  config.batch_size = 64
  config.optimizer.update(name="adam", learning_rate=1e-3, weight_decay=0.0,
                          schedule="cosine", grad_clip_norm=0.0)
  # "auto": the checkpoint kept as best is chosen on val/rmse (min) for regression,
  # val/roc_auc (max) for classification; any metric the evaluators report can be set.
  config.best_metric = config.best_mode = "auto"
  _epochs(config, train_molecules, epochs)
  if preset == "quick":
    config.task.readout = "sum"  # TPSA is a sum of atom contributions
  if preset == "esol":
    # Chosen on validation RMSE, 3 seeds: 0.565 with descriptors, 0.597 without.
    config.task.descriptors = True
  if "smoke" in options:
    config.batch_size = 8
    config.total_steps = config.eval_every = config.checkpoint_every = 1
    config.log_every = 1
    config.optimizer.warmup_steps = 0
    config.task.update(hidden=16, head_hidden=16, depth=2)
  return config
