"""Predictions for a CSV of new SMILES from trained workdirs (one, or an ensemble).

Each workdir holds `config.json` (written by experiments/molecule.py), the task
metadata (`molecule_task.json`: target scaling, task names, descriptor normaliser)
and checkpoints; the training data are not needed. Output: one row per input row
(`row`: 0-based data row, `line`: its line in the input file), `valid` = 0 for
SMILES RDKit rejects (their predictions are empty); with several models, the
ensemble mean and `<task>_std` (spread across models).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
import pandas as pd

from medjax.engine import restore
from medjax.engine import task as engine_task
from medjax.engine.errors import InputError
from medjax.molecule import batching, datasets
from medjax.molecule import task as task_lib

CONFIG_FILE = "config.json"


def _trained(w: str) -> list[str]:
  """`w` if it holds a trained model, else the trained models under its `run*`
  (repeats) and `member*` (ensemble) subdirs."""
  if os.path.exists(os.path.join(w, task_lib.METADATA_FILE)):
    return [w]
  subs = sorted(d for d in (os.listdir(w) if os.path.isdir(w) else ())
                if d.startswith(("run", "member")) and os.path.isdir(os.path.join(w, d)))
  return [m for d in subs for m in _trained(os.path.join(w, d))]


def run_dirs(workdirs: Sequence[str]) -> list[str]:
  """Workdirs of trained models: each given dir, or those in its `run*` subdirs
  (repeats) and `member*` subdirs (ensembles)."""
  found = []
  for w in workdirs:
    models = _trained(w)
    if not models:
      raise InputError(f"{w}: not a trained molecule workdir (no {task_lib.METADATA_FILE} "
                       "in it or in its run*/ or member*/ subdirectories); train it first")
    found += models
  return found


class Predictor(task_lib.ModelSpec, engine_task.Task):
  """A trained model's spec, batching the molecules of one input file: a task
  for prediction only (the engine restores its state; it never trains)."""

  def loss(self, outputs, batch):
    raise NotImplementedError("a Predictor predicts; train with MoleculeTask")

  def train_dataset(self, batch_size, seed, shard_index=0, shard_count=1):
    raise NotImplementedError("a Predictor predicts; train with MoleculeTask")

  def attach(self, data: datasets.MoleculeDataset, graphs_per_block: int = 64):
    desc = None
    if self.descriptor_normaliser is not None:
      desc = self.descriptor_normaliser(data.descriptors)
    budget = batching.make_budget(data.store, graphs_per_block, self.cfg.node_slack)
    self.packer = batching.BlockPacker(data.store, budget, None, desc)
    self.n_blocks = jax.local_device_count()
    self.size = len(data)
    return self

  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    del batch_size
    return batching.sequential_batches(self.packer, [0], self.n_blocks)[0]

  def predict_all(self, predict_fn) -> np.ndarray:
    batches = batching.sequential_batches(self.packer, range(self.size), self.n_blocks)
    return self.postprocess(task_lib.collect(predict_fn, batches))


def _load_json(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def predict_with(workdir: str, csv_path: str, smiles_column: str) -> tuple:
  """(dataset of the input, predictions [valid molecules, tasks(, classes)], spec)."""
  meta = _load_json(os.path.join(workdir, task_lib.METADATA_FILE))
  config = ml_collections.ConfigDict(_load_json(os.path.join(workdir, CONFIG_FILE)))
  spec = Predictor.from_metadata(meta)
  data = datasets.load(datasets.DatasetSpec(os.path.basename(csv_path), smiles_column),
                       csv_path, spec.cfg.cache_dir or None, spec.cfg.descriptors,
                       require_targets=False)
  if not len(data):
    return data, None, spec
  spec.attach(data)
  _, predict_fn = restore.load_for_prediction(config, workdir, spec)
  return data, spec.predict_all(predict_fn), spec


def _columns(spec, mean, std, frame):
  if spec.task_type == "multiclass":
    for t, name in enumerate(spec.task_names):
      frame[name] = mean[:, t].argmax(-1)
      for c in range(spec.num_classes):
        frame[f"{name}_p{c}"] = mean[:, t, c]
        if std is not None:
          frame[f"{name}_p{c}_std"] = std[:, t, c]
    return frame
  for t, name in enumerate(spec.task_names):
    frame[name] = mean[:, t]
    if std is not None:
      frame[f"{name}_std"] = std[:, t]
  return frame


def predict_csv(workdirs: Sequence[str], csv_path: str, output_path: str,
                smiles_column: str = "smiles") -> pd.DataFrame:
  """Writes and returns the prediction table (ensemble mean / sd over workdirs)."""
  runs = [predict_with(w, csv_path, smiles_column) for w in run_dirs(workdirs)]
  data, _, spec = runs[0]
  table = datasets.read_table(datasets.DatasetSpec("", smiles_column), csv_path)
  out = pd.DataFrame({"row": np.arange(len(table.frame)), "line": table.lines,
                      "smiles": table.frame[smiles_column]})
  out["valid"] = 0
  out.loc[data.rows, "valid"] = 1
  if len(data):
    stack = np.stack([p for _, p, _ in runs])
    std = stack.std(0, ddof=1) if len(runs) > 1 else None
    values = _columns(spec, stack.mean(0), std, pd.DataFrame(index=data.rows))
    out = out.join(values)
  os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
  out.to_csv(output_path, index=False)
  return out
