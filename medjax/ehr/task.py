"""`EhrTask`: in-hospital mortality from ICU time series or visit-code sequences.

Datasets (`config.task.dataset`): `synthetic` (embedded generator), `physionet` (a
PhysioNet 2012 set directory), `mimic` (MIMIC-III demo or full tables), `eicu` (eICU
demo). Models (`config.task.model`): `gru`, `lstm`, `grud` (binned inputs),
`transformer`, `mtan` (per-observation-time tokens), `retain` (visit codes).

Preprocessing statistics (normaliser, code vocabulary, positive-class weight) are fitted
on the training split only and written to `<workdir>/ehr_preprocessing.json` on the first
run; a resumed run, or an evaluation of the trained model on another set directory,
reads them back from there instead of refitting. The risk is calibrated
(`task.calibration`, medjax.ehr.calibration): a temperature fitted on the validation
split, stored in `<workdir>/calibration.json` and read back the same way.
"""

from __future__ import annotations

import functools
import json
import os

import grain
import jax.numpy as jnp
import numpy as np
import optax

from medjax.engine.errors import InputError
from medjax.engine.task import Task
from medjax.ehr import calibration as calibration_lib
from medjax.ehr import codes as codes_lib
from medjax.ehr import examples as ex
from medjax.ehr import physionet, report as report_lib, splits as splits_lib, synthetic
from medjax.ehr.attribution import WithAttribution
from medjax.ehr.bucketing import BucketedBatches
from medjax.ehr.evaluation import MortalityEvaluator
from medjax.ehr.models import GRUD, MTAN, RETAIN, RNNClassifier, TransformerClassifier
from medjax.ehr.normalise import Normaliser

PREPROCESSING_FILE = "ehr_preprocessing.json"
# Prefetch a few batches on 2 threads (grain's default: 500 elements, 16 threads).
_READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=8)

_INPUTS = {
    "binned": ("values", "mask", "delta", "static"),
    "tokens": ("values", "mask", "times", "token_mask", "static"),
    "codes": ("codes", "visit_mask", "visit_times"),
}


def input_kind(model: str) -> str:
  kinds = {"gru": "binned", "lstm": "binned", "grud": "binned", "transformer": "tokens",
           "mtan": "tokens", "retain": "codes"}
  if model not in kinds:
    raise InputError(f"unknown model {model!r} ({' | '.join(kinds)})")
  return kinds[model]


def shared_path(cfg, path: str) -> str:
  """`path` as is when absolute, else under `task.data_root` (or $MEDJAX_SHARED_DATA)."""
  if os.path.isabs(path):
    return path
  root = cfg.get("data_root") or os.environ.get("MEDJAX_SHARED_DATA")
  if not root:
    raise InputError(f"{path!r} is relative: set --config.task.data_root (or "
                     "$MEDJAX_SHARED_DATA) to the directory that holds it, or give an "
                     "absolute path")
  return os.path.join(root, path)


def load_dataset(cfg, set_dir: str = "", outcomes: str = ""):
  """`IcuData` or `CodeData` named by `cfg.dataset` (`set_dir` overrides the PhysioNet set)."""
  if cfg.dataset == "synthetic":
    return synthetic.generate(cfg.synthetic_stays, cfg.synthetic_seed)
  if cfg.dataset == "physionet":
    cache = cfg.cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "medjax", "ehr")
    return physionet.load_set(shared_path(cfg, set_dir or cfg.set_dir),
                              outcomes or cfg.outcomes, cache)
  if cfg.dataset == "mimic":
    return codes_lib.load_mimic(shared_path(cfg, cfg.mimic_dir))
  if cfg.dataset == "eicu":
    return codes_lib.load_eicu(shared_path(cfg, cfg.eicu_dir), cfg.eicu_window_hours)
  raise InputError(f"unknown dataset {cfg.dataset!r} (synthetic | physionet | mimic | eicu)")


def make_splits(cfg, data) -> dict[str, np.ndarray]:
  return splits_lib.make_splits(
      data.labels, scheme=cfg.split, num_folds=cfg.num_folds, fold=cfg.fold,
      repeat=cfg.repeat, test_fraction=cfg.test_fraction, val_fraction=cfg.val_fraction,
      seed=cfg.split_seed, groups=getattr(data, "groups", None))


def fit_preprocessing(cfg, data, train: np.ndarray) -> dict:
  """Statistics from the training split only (JSON-serialisable)."""
  labels = data.labels[train]
  positives = max(int(labels.sum()), 1)
  pos_weight = (len(labels) - positives) / positives if cfg.imbalance == "weighted" else 1.0
  prep = {"run": run_fingerprint(cfg, train), "pos_weight": float(pos_weight),
          "train_positives": int(labels.sum())}
  if input_kind(cfg.model) == "codes":
    prep["vocab"] = codes_lib.build_vocab(data, train, cfg.min_code_count)
  else:
    prep["normaliser"] = Normaliser.fit(data, train).to_dict()
  return prep


def oversample_copies(labels) -> int:
  """How often `imbalance=oversample` repeats each positive training stay."""
  labels = np.asarray(labels)
  return max(1, int(round((labels == 0).sum() / max((labels == 1).sum(), 1))))


def run_fingerprint(cfg, train) -> dict:
  """What the statistics depend on; a resumed run must match it."""
  keys = ("dataset", "set_dir", "model", "split", "num_folds", "fold", "repeat",
          "split_seed", "val_fraction", "test_fraction", "synthetic_stays", "synthetic_seed")
  return {**{k: cfg.get(k) for k in keys}, "train_size": int(len(train))}


def load_or_fit_preprocessing(cfg, data, train, workdir: str, check: bool = True) -> dict:
  """Reads `<workdir>/ehr_preprocessing.json`, or fits and writes it. With `check`, a
  stored file from a different data set / split is an error, not silently reused."""
  path = os.path.join(workdir, PREPROCESSING_FILE) if workdir else ""
  if path and os.path.exists(path):
    with open(path) as f:
      prep = json.load(f)
    if check and prep["run"] != run_fingerprint(cfg, train):
      raise InputError(f"{path} was fitted for {prep['run']}, not for this run "
                       f"{run_fingerprint(cfg, train)}: use a fresh workdir")
    return prep
  prep = fit_preprocessing(cfg, data, train)
  if path:
    os.makedirs(workdir, exist_ok=True)
    with open(path + ".tmp", "w") as f:
      json.dump(prep, f)
    os.replace(path + ".tmp", path)
  return prep


def build_examples(cfg, data, prep: dict) -> ex.Examples:
  kind = input_kind(cfg.model)
  if kind == "codes":
    return ex.code_examples(data, prep["vocab"], cfg.max_codes)
  normaliser = Normaliser.from_dict(prep["normaliser"])
  if tuple(data.variables) != normaliser.variables:
    raise InputError(f"variables {data.variables} differ from the trained "
                     f"{normaliser.variables}")
  if kind == "binned":
    return ex.binned_examples(data, normaliser, cfg.num_bins, cfg.bin_hours)
  return ex.token_examples(data, normaliser, cfg.num_bins * cfg.bin_hours)


def build_model(cfg, prep: dict):
  if cfg.model == "retain":
    return RETAIN(len(prep["vocab"]) + 2, cfg.embed_dim, cfg.hidden, cfg.dropout)
  if cfg.model in ("gru", "lstm"):
    backbone = RNNClassifier(cfg.model, cfg.hidden, cfg.layers, cfg.dropout)
  elif cfg.model == "grud":
    backbone = GRUD(cfg.hidden, cfg.dropout)
  elif cfg.model == "mtan":
    backbone = MTAN(cfg.hidden, cfg.get("ref_points", 128), cfg.get("embed_time", 128),
                    cfg.heads, cfg.get("classifier_hidden", 300), cfg.dropout,
                    horizon=cfg.num_bins * cfg.bin_hours)
  else:
    backbone = TransformerClassifier(cfg.hidden, cfg.heads, cfg.layers, 2 * cfg.hidden,
                                     cfg.dropout)
  return WithAttribution(backbone)


class StaySource:
  """Random access to the training stays (DP-SGD's Poisson sampling, medjax.privacy.dp):
  `batch(ids, rows)` pads to `rows` rows (`_mask` 0) and to one sequence length."""

  def __init__(self, examples, indices: np.ndarray, pad_multiple: int):
    self.examples, self.indices = examples, np.asarray(indices)
    self.multiple = ex.split_multiple(examples, self.indices, pad_multiple)

  def __len__(self):
    return len(self.indices)

  def batch(self, ids, rows):
    items = [self.examples[i] for i in self.indices[np.asarray(ids, np.int64)]]
    items = items or [dict(self.examples[self.indices[0]], _mask=np.float32(0.0))]
    return ex.padded_batch(items, rows, self.multiple)


class EhrTask(Task):
  """See the module docstring. `data` / `splits` override what `cfg` names (used to
  evaluate a trained model on another set directory)."""

  # Hours since admission / since the last observation: bfloat16 would round them
  # to a quarter hour (see steps.make_apply).
  float32_inputs = ("times", "delta", "visit_times")

  def __init__(self, cfg, *, batch_size: int, workdir: str = "", data=None, splits=None):
    self.cfg = cfg
    self.kind = input_kind(cfg.model)
    self.data = load_dataset(cfg) if data is None else data
    self.splits = make_splits(cfg, self.data) if splits is None else splits
    self.prep = load_or_fit_preprocessing(cfg, self.data, self.splits["train"], workdir,
                                          check=splits is None)
    self.examples = build_examples(cfg, self.data, self.prep)
    self.model = build_model(cfg, self.prep)
    self.pos_weight = float(self.prep["pos_weight"])
    self.eval_batch_size = cfg.eval_batch_size or batch_size
    self.pad_multiple = 1 if self.kind == "binned" else cfg.pad_multiple
    if cfg.imbalance not in ("weighted", "oversample", "none"):
      raise InputError(f"imbalance={cfg.imbalance!r}: weighted | oversample | none")
    self.calibrator = self._calibrator(workdir)
    self._evaluators = None

  def _calibrator(self, workdir: str) -> calibration_lib.Calibrator:
    """Offsets to try: 0 and the loss's prior shift (log of the positive weight)."""
    method = self.cfg.get("calibration", "temperature")
    if method not in ("temperature", "none"):
      raise InputError(f"task.calibration={method!r}: temperature | none")
    if method == "none":
      return calibration_lib.Calibrator(offsets=())
    weight = self.pos_weight
    if self.cfg.imbalance == "oversample":
      weight = oversample_copies(self.data.labels[self.splits["train"]])
    offset = calibration_lib.prior_offset(self.cfg.imbalance, weight)
    return calibration_lib.Calibrator((0.0, offset), calibration_lib.load(workdir))

  # -- model interface ------------------------------------------------------------------
  def model_inputs(self, batch):
    inputs = {k: batch[k] for k in _INPUTS[self.kind]}
    if "attribute" in batch:
      inputs["attribute"] = batch["attribute"]
    return inputs

  def loss(self, outputs, batch):
    logits, labels, mask = outputs["logits"], batch["label"], batch["_mask"]
    bce = optax.sigmoid_binary_cross_entropy(logits, labels)
    weights = mask * jnp.where(labels > 0.5, self.pos_weight, 1.0)
    loss = jnp.sum(weights * bce) / jnp.maximum(jnp.sum(weights), 1e-6)
    return loss, {"bce": jnp.sum(mask * bce) / jnp.maximum(jnp.sum(mask), 1.0)}

  # -- data -----------------------------------------------------------------------------
  def train_indices(self) -> np.ndarray:
    """Training indices; with `imbalance=oversample`, positives repeated to balance."""
    train = np.asarray(self.splits["train"])
    if self.cfg.imbalance != "oversample":
      return train
    labels = self.data.labels[train]
    positives, negatives = train[labels == 1], train[labels == 0]
    return np.concatenate([negatives, np.tile(positives, oversample_copies(labels))])

  def train_dataset(self, batch_size, seed, shard_index=0, shard_count=1):
    """Endless shuffled batches: process `shard_index` gets its rows of each global batch
    (so the global batch does not depend on the process count). Variable-length inputs
    are length-bucketed (`bucket_pool` batches sorted together, 0: no bucketing); the
    whole global batch is collated, so every process pads to the same shape."""
    indices, global_batch = self.train_indices(), batch_size * shard_count
    if len(indices) < global_batch:
      indices = np.resize(indices, global_batch)  # tiny data sets (demos, smoke tests)
    pool = self.cfg.bucket_pool if self.kind != "binned" else 0
    lengths = ([ex.sequence_length(self.examples[i]) for i in indices] if pool > 0
               else np.zeros(len(indices)))
    source = BucketedBatches(indices, lengths, global_batch, max(pool, 1), seed)
    rows = slice(shard_index * batch_size, (shard_index + 1) * batch_size)
    return grain.MapDataset.source(source).map(
        functools.partial(self._collate_rows, rows=rows)).to_iter_dataset(_READ_OPTIONS)

  def train_source(self) -> StaySource:
    """Each training stay once (privacy: one stay, one example)."""
    if self.cfg.imbalance == "oversample":
      raise InputError("task.imbalance=oversample repeats positive stays, which DP-SGD "
                       "would count as different people: use weighted or none")
    return StaySource(self.examples, self.splits["train"], self.pad_multiple)

  def _collate_rows(self, indices, rows):
    batch = ex.collate([self.examples[i] for i in indices], self.pad_multiple)
    return {k: v[rows] for k, v in batch.items()}

  def example_batch(self, batch_size):
    indices = np.resize(self.splits["train"] if len(self.splits["train"]) else
                        np.arange(len(self.examples)), batch_size)
    return ex.collate([self.examples[i] for i in indices], self.pad_multiple)

  def evaluators(self):
    if self._evaluators is None:
      self._evaluators = [
          MortalityEvaluator(name, self.examples, self.splits[name], self.eval_batch_size,
                             self.pad_multiple, self.calibrator,
                             fit_calibration=name == "val" and bool(self.calibrator.offsets))
          for name in ("val", "test") if len(self.splits.get(name, ()))]
    return self._evaluators

  def report(self, predict_fn, workdir):
    return report_lib.write_report(self, predict_fn, workdir)
