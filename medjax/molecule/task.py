"""Molecular property prediction as a `medjax.engine.task.Task`.

Regression (targets standardised on the training split), multi-task binary
classification with missing labels, and multi-class classification, over padded
graph batches (`batching.py`): a batch stacks `blocks` blocks (default: one per local
device) of up to `batch_size / blocks` molecules each, so the trainer's
leading-axis sharding hands each device whole molecules.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from medjax.engine import task as task_lib
from medjax.engine.errors import InputError
from medjax.molecule import batching, columns, datasets, descriptors, models, report, splits
from medjax.molecule import metrics as metrics_lib

GRAPH_KEYS = ("atom_features", "bond_features", "edge_src", "edge_dst", "edge_rev",
              "node_graph", "node_mask", "edge_mask")
METADATA_FILE = "molecule_task.json"
AUTO = "auto"  # config.best_metric / best_mode: derived from the task type
# Metrics where lower is better (best_mode=auto picks "min" for these).
_LOWER_IS_BETTER = ("loss", "rmse", "mae", "cross_entropy")


def load_dataset(cfg: ml_collections.ConfigDict) -> datasets.MoleculeDataset:
  """The dataset a `task` config names: `csv` (generic), `tpsa` or a MoleculeNet name."""
  if cfg.dataset == "csv":
    if not cfg.csv_path:
      raise InputError("--config.task.dataset=csv needs --config.task.csv_path (and "
                       "--config.task.target_columns)")
    if not os.path.isfile(cfg.csv_path):
      raise InputError(f"--config.task.csv_path={cfg.csv_path}: no such file")
    file = cfg.get("target_columns_file", "")
    spec = datasets.DatasetSpec(os.path.basename(cfg.csv_path), cfg.smiles_column,
                                columns.parse(cfg.target_columns, file), cfg.task_type,
                                columns_flag=columns.flag_for(file))
    path = cfg.csv_path
  else:
    spec, path = datasets.resolve(cfg.dataset, cfg.data_dir or None)
  return datasets.load(spec, path, cfg.cache_dir or None, cfg.descriptors)


def collect(predict_fn, batches) -> np.ndarray:
  """Raw outputs of the real molecules of `batches`, in batch order."""
  outputs = [np.asarray(predict_fn(b))[b["_mask"] > 0] for b in batches]
  return np.concatenate(outputs)


class Evaluator(task_lib.Evaluator):
  """Metrics of one split (`val` or `test`), each molecule counted once."""

  def __init__(self, name: str, task: MoleculeTask, ids: np.ndarray):
    self.name, self._task, self._ids = name, task, ids
    self.final_only = name == "test"  # the test split: once, after training

  def run(self, predict_fn):
    predictions = self._task.predict(predict_fn, self._ids)
    yield from self._task.score(self._ids, predictions).items()


class ModelSpec:
  """What a trained model needs besides its parameters: the model, its inputs, the
  target scaling and how raw outputs become predictions. Rebuilt from a workdir's
  metadata for prediction, without the training data (`from_metadata`)."""

  cfg: ml_collections.ConfigDict
  task_type: str
  task_names: tuple[str, ...]
  num_classes: int
  target_mean: np.ndarray
  target_std: np.ndarray
  descriptor_normaliser: descriptors.Normalizer | None

  def _build_model(self):
    out_dim = len(self.task_names) * max(self.num_classes, 1)
    self.model = models.build_model(self.cfg, out_dim)

  def model_inputs(self, batch) -> dict[str, Any]:
    inputs = {k: batch[k] for k in GRAPH_KEYS}
    inputs["graph_mask"] = batch["_mask"]
    if self.cfg.descriptors:
      inputs["descriptors"] = batch["descriptors"]
    return inputs

  def per_label_loss(self, outputs, targets):
    """[blocks, graphs, tasks]: squared error, binary or softmax cross-entropy."""
    if self.task_type == "regression":
      return jnp.square(outputs - targets)
    if self.task_type == "binary":
      return optax.sigmoid_binary_cross_entropy(outputs, targets)
    logits = outputs.reshape(targets.shape + (self.num_classes,))
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets.astype(jnp.int32))

  def postprocess(self, outputs: np.ndarray) -> np.ndarray:
    """Raw outputs of real molecules [M, out] -> targets' units / probabilities."""
    outputs = np.asarray(outputs, np.float64)
    if self.task_type == "regression":
      return outputs * self.target_std + self.target_mean
    if self.task_type == "binary":
      return 1 / (1 + np.exp(-outputs))
    logits = outputs.reshape(len(outputs), len(self.task_names), self.num_classes)
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)

  def metadata(self) -> dict[str, Any]:
    return {
        "task": self.cfg.to_dict(), "task_type": self.task_type,
        "task_names": list(self.task_names), "num_classes": self.num_classes,
        "target_mean": np.asarray(self.target_mean).tolist(),
        "target_std": np.asarray(self.target_std).tolist(),
        "descriptors": (self.descriptor_normaliser.state()
                        if self.descriptor_normaliser else None),
    }

  @classmethod
  def from_metadata(cls, meta: dict[str, Any]) -> ModelSpec:
    spec = cls()
    spec.cfg = ml_collections.ConfigDict(meta["task"])
    spec.task_type, spec.task_names = meta["task_type"], tuple(meta["task_names"])
    spec.num_classes = meta["num_classes"]
    spec.target_mean = np.asarray(meta["target_mean"])
    spec.target_std = np.asarray(meta["target_std"])
    spec.descriptor_normaliser = (descriptors.Normalizer.from_state(meta["descriptors"])
                                  if meta["descriptors"] else None)
    spec._build_model()
    return spec


class MoleculeTask(ModelSpec, task_lib.Task):
  """`cfg` is the config's `task` section; `batch_size` the global batch size."""

  def __init__(self, cfg: ml_collections.ConfigDict, batch_size: int,
               dataset: datasets.MoleculeDataset | None = None):
    self.cfg = cfg
    self.data = dataset if dataset is not None else load_dataset(cfg)
    self.task_type, self.task_names = self.data.task_type, self.data.task_names
    logging.info("%d molecules, %d invalid SMILES skipped, featurised in %.2fs%s",
                 len(self.data), len(self.data.invalid), self.data.featurize_seconds,
                 " (cache)" if self.data.from_cache else "")
    for row, smiles in self.data.invalid[:10]:
      logging.warning("invalid SMILES skipped: %s: %r", self.data.where(row), smiles)
    if len(self.data.invalid) > 10:
      logging.warning("... and %d more invalid SMILES (all in invalid_smiles.csv)",
                      len(self.data.invalid) - 10)
    for name, missing in self.data.missing_labels().items():
      logging.info("task %s: %d of %d molecules have no label", name, missing, len(self.data))
    self.split = self._make_split(cfg)
    self._fit_normalisers()
    self._fit_class_balance()
    self.num_classes = self._num_classes()
    self._build_model()
    self.n_blocks = cfg.blocks or jax.local_device_count()
    self.graphs_per_block = self.graphs_for_batch(batch_size // jax.process_count())
    self._packers: dict[int, batching.BlockPacker] = {}
    self._eval_batches: dict[bytes, list] = {}

  def _make_split(self, cfg) -> splits.Split:
    """The split of the molecules (of `task.subset` of them, when set), as row ids."""
    ids = splits.subset(len(self.data), cfg.get("subset", 0), cfg.get("subset_seed", 0))
    split = splits.make_split(cfg.split, [self.data.smiles[i] for i in ids],
                              self.data.targets[ids], self.task_type,
                              tuple(cfg.split_fractions), cfg.split_seed, cfg.folds, cfg.fold)
    return {name: ids[part] for name, part in split.items()}

  # ----- normalisation -----------------------------------------------------

  def _fit_normalisers(self):
    train = self.split["train"]
    t = self.data.targets
    if self.task_type == "regression":
      self.target_mean = np.nanmean(t[train], axis=0)
      std = np.nanstd(t[train], axis=0)
      self.target_std = np.where(std > 0, std, 1.0)
    else:
      self.target_mean, self.target_std = np.zeros(t.shape[1]), np.ones(t.shape[1])
    self.normalised_targets = ((t - self.target_mean) / self.target_std).astype(np.float32)
    self.descriptor_normaliser = self.descriptors = None
    if self.cfg.descriptors:
      self.descriptor_normaliser = descriptors.Normalizer.fit(self.data.descriptors[train])
      self.descriptors = self.descriptor_normaliser(self.data.descriptors)

  def _fit_class_balance(self):
    """task.class_balance (binary): per task, negatives / positives of the training
    labels, the weight of a positive label in the loss (1 where a class is absent)."""
    self.positive_weight = None
    if not self.cfg.get("class_balance", False) or self.task_type != "binary":
      return
    t = self.data.targets[self.split["train"]]
    pos, neg = np.sum(t == 1, axis=0), np.sum(t == 0, axis=0)
    self.positive_weight = np.where((pos > 0) & (neg > 0), neg / np.maximum(pos, 1),
                                    1.0).astype(np.float32)
    logging.info("class balance: positive weights %s", np.round(self.positive_weight, 2))

  def _num_classes(self) -> int:
    if self.task_type != "multiclass":
      return 0
    return self.cfg.num_classes or int(np.nanmax(self.data.targets)) + 1

  # ----- batching --------------------------------------------------------------

  def graphs_for_batch(self, batch_size: int) -> int:
    """Molecules per block for a per-process batch of `batch_size`."""
    return max(1, math.ceil(batch_size / self.n_blocks))

  def packer(self, graphs_per_block: int | None = None) -> batching.BlockPacker:
    g = graphs_per_block or self.graphs_per_block
    if g not in self._packers:
      budget = batching.make_budget(self.data.store, g, self.cfg.node_slack)
      self._packers[g] = batching.BlockPacker(self.data.store, budget,
                                              self.normalised_targets, self.descriptors)
    return self._packers[g]

  def train_dataset(self, batch_size: int, seed: int, shard_index: int = 0,
                    shard_count: int = 1):
    ids = self.split["train"][shard_index::shard_count]
    return batching.training_stream(self.packer(self.graphs_for_batch(batch_size)), ids,
                                    self.n_blocks, seed)

  def train_source(self) -> batching.MoleculeSource:
    """The training molecules one per block (privacy: one molecule, one example)."""
    return batching.MoleculeSource(self.packer(1), self.split["train"])

  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    packer = self.packer(self.graphs_for_batch(batch_size))
    return batching.sequential_batches(packer, self.split["train"][:1], self.n_blocks)[0]

  def eval_batches(self, ids: np.ndarray) -> list[dict[str, np.ndarray]]:
    key = np.asarray(ids, np.int64).tobytes()
    if key not in self._eval_batches:
      # A block per device of every process (predict shares each batch out).
      self._eval_batches[key] = batching.sequential_batches(
          self.packer(), ids, self.n_blocks * jax.process_count())
    return self._eval_batches[key]

  # ----- model and loss ------------------------------------------------------

  def loss(self, outputs, batch):
    labelled = batch["_mask"][..., None] * batch["target_mask"]
    weights = labelled
    if self.positive_weight is not None:  # task.class_balance: positives up-weighted
      weights = labelled * jnp.where(batch["targets"] > 0.5, self.positive_weight, 1.0)
    per_label = self.per_label_loss(outputs, batch["targets"])
    count = jnp.sum(labelled)
    loss = jnp.sum(per_label * weights) / jnp.maximum(count, 1.0)
    return loss, {"loss": loss, "labels": count}

  # ----- prediction and metrics ------------------------------------------------

  def predict(self, predict_fn, ids: np.ndarray) -> np.ndarray:
    """Predictions for molecules `ids`, in that order."""
    outputs = collect(predict_fn, self.eval_batches(ids))
    assert len(outputs) == len(ids), (len(outputs), len(ids))
    return self.postprocess(outputs)

  def score(self, ids: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    targets, names = self.data.targets[ids], self.task_names
    if self.task_type == "regression":
      return metrics_lib.regression(targets, predictions, names)
    if self.task_type == "binary":
      return metrics_lib.binary(targets, predictions, names)
    return metrics_lib.multiclass(targets, predictions, names)

  def metric_names(self) -> list[str]:
    """Names reported at every evaluation: `val/<metric>` of `score`, and `val/loss`
    (which the engine adds for evaluators whose batches carry `_mask`)."""
    if not len(self.split["val"]):
      return []
    tasks = len(self.task_names)
    shape = (0, tasks, self.num_classes) if self.task_type == "multiclass" else (0, tasks)
    names = self.score(np.zeros(0, np.int64), np.zeros(shape))
    return [f"val/{k}" for k in (*names, "loss")]

  def evaluators(self):
    return [Evaluator(name, self, self.split[name]) for name in ("val", "test")
            if len(self.split[name])]

  # ----- run outputs -------------------------------------------------------------

  def write_run_files(self, workdir: str) -> None:
    """Metadata for prediction, the invalid SMILES (file line, row, string) of the
    input, the split (`split.csv`) and the labelled / missing counts per task
    (`labels.csv`)."""
    with open(report.figure_path(workdir, METADATA_FILE), "w") as f:
      json.dump(self.metadata(), f, indent=1)
    report.write_invalid(report.figure_path(workdir, "invalid_smiles.csv"), self.data.invalid,
                         self.data.lines)
    report.write_split(report.figure_path(workdir, "split.csv"), self.split, self.data.rows,
                       self.data.smiles)
    report.write_label_counts(report.figure_path(workdir, "labels.csv"),
                              self.data.missing_labels(), len(self.data))

  def report(self, predict_fn, workdir: str) -> dict[str, float]:
    self.write_run_files(workdir)
    ids = self.split["test"]
    out = {"data/molecules": float(len(self.data)),
           "data/invalid_smiles": float(len(self.data.invalid)),
           "data/missing_labels": float(sum(self.data.missing_labels().values())),
           "data/featurize_seconds": self.data.featurize_seconds}
    if not len(ids):
      return out
    pred = self.predict(predict_fn, ids)
    targets = self.data.targets[ids]
    smiles = [self.data.smiles[i] for i in ids]
    flat = pred if pred.ndim == 2 else pred.argmax(-1).astype(np.float64)
    report.write_predictions(report.figure_path(workdir, "test_predictions.csv"), smiles,
                             self.data.rows[ids], self.task_names, targets, flat)
    title = f"{self.cfg.dataset} {self.cfg.split} split, test"
    if self.task_type == "regression":
      report.plot_predicted_vs_true(targets, pred, self.task_names,
                                    report.figure_path(workdir, "test_pred_vs_true.png"), title)
    elif self.task_type == "binary":
      report.plot_roc(targets, pred, self.task_names,
                      report.figure_path(workdir, "test_roc.png"), title)
    return out


def default_best_metric(task_type: str) -> str:
  return "val/rmse" if task_type == "regression" else "val/roc_auc"


def resolve_best_metric(config: ml_collections.ConfigDict, task: MoleculeTask) -> None:
  """Sets `config.best_metric` / `best_mode` left at "auto" from the task type, and
  checks an explicit best metric against the task's evaluation metrics."""
  names = task.metric_names()
  if config.best_metric == AUTO:
    config.best_metric = default_best_metric(task.task_type) if names else ""
    if not names:
      logging.warning("no validation split: no best checkpoint is kept")
  elif config.best_metric and config.best_metric not in names:
    valid = ", ".join(names) if names else "none (the validation split is empty)"
    raise InputError(f"--config.best_metric={config.best_metric!r} is not an evaluation "
                     f"metric of this {task.task_type} task; valid: {valid}")
  if config.best_mode == AUTO:
    metric = config.best_metric.split("/")[1] if config.best_metric else ""
    config.best_mode = "min" if metric in _LOWER_IS_BETTER else "max"
  elif config.best_mode not in ("min", "max"):
    raise InputError(f"--config.best_mode={config.best_mode!r}: one of auto, min, max")
