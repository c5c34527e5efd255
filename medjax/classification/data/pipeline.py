"""Host preprocessing and grain pipelines from a classification source to numpy batches.

A source example is `{"image": (*S, C) uint8, "label": int64 | "labels": (K,) int8,
"id": bytes}` (see `builders`). `Preprocess` turns it into `{"image": (*S, C)
float32 in [0, 1], "label": int32}` or, multi-label, `{"image", "targets": (K,)
float32, "label_mask": (K,) float32}` under the uncertain-label policy. Batches add
a leading example axis and `_mask` (B,) float32 (1: a real example); evaluation
batches also carry `id` (B,) str ("" for padding).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import grain
import numpy as np

from medjax.classification.data import labels as labels_lib
from medjax.engine import sharded_input
from medjax.segmentation.data.errors import DataError

DEFAULT_READ_OPTIONS = grain.ReadOptions(num_threads=4, prefetch_buffer_size=8)
SAMPLING = ("shuffle", "balanced")


class Preprocess:
  """Source example -> model example (image / 255 and the targets)."""

  def __init__(self, multi_label: bool, policy: str = "ignore"):
    self.multi_label, self.policy = multi_label, labels_lib.check_policy(policy)

  def __call__(self, example: dict) -> dict:
    out = {"image": np.asarray(example["image"], np.float32) / 255.0}
    if self.multi_label:
      out["targets"], out["label_mask"] = labels_lib.apply_policy(example["labels"],
                                                                  self.policy)
    else:
      out["label"] = np.int32(example["label"])
    return out


class _BalancedIndex:
  """Global index -> source index: each epoch (N draws) samples examples with
  replacement, weighted so that every class is drawn equally often on average.
  Epoch e's draws depend only on (seed, e), so any position can be resumed."""

  def __init__(self, labels: Sequence[int], seed: int):
    labels = np.asarray(labels, np.int64)
    counts = np.bincount(labels)
    weights = 1.0 / counts[labels]
    self.p, self.seed, self.n = weights / weights.sum(), seed, len(labels)

  @functools.lru_cache(maxsize=4)
  def epoch(self, e: int) -> np.ndarray:
    return np.random.default_rng([self.seed, e]).choice(self.n, self.n, p=self.p)

  def __call__(self, i: int, _) -> int:
    e, position = divmod(i, self.n)
    return int(self.epoch(e)[position])


class _Fetch:
  def __init__(self, source):
    self.source = source

  def __call__(self, index):
    return self.source[int(index)]


def _add_mask(batch: dict) -> dict:
  return {**batch, "_mask": np.ones(len(batch["image"]), np.float32)}


def train_dataset(source, preprocess: Preprocess, batch_size: int, seed: int,
                  shard_index: int = 0, shard_count: int = 1, sampling: str = "shuffle",
                  labels: Sequence[int] | None = None,
                  read_options: grain.ReadOptions | None = None) -> grain.IterDataset:
  """Endless batches: this process's rows of each global batch (`sharded_input`).

  `sampling="shuffle"` reshuffles the source every epoch; "balanced" draws each
  epoch's examples with class-balanced weights from `labels` (the class of each
  source example; single-label only). Both are deterministic in `seed` and resume
  exactly from the iterator's `get_state()`.
  """
  if len(source) == 0:
    raise DataError("cannot train on an empty split")
  if sampling == "shuffle":
    ds = grain.MapDataset.source(source).shuffle(seed=seed).repeat(None)
  elif sampling == "balanced":
    if labels is None or len(labels) != len(source):
      raise DataError("balanced sampling needs one class label per training example "
                      "(single-label data)")
    ds = grain.MapDataset.range(len(source)).repeat(None)
    ds = ds.map_with_index(_BalancedIndex(labels, seed)).map(_Fetch(source))
  else:
    raise DataError(f"config.task.sampling: unknown {sampling!r} (known: {SAMPLING})")
  ds = sharded_input.process_rows(ds, batch_size, shard_index, shard_count)
  ds = ds.map(preprocess).batch(batch_size, drop_remainder=True).map(_add_mask)
  return ds.to_iter_dataset(read_options or DEFAULT_READ_OPTIONS)


class _PaddedExample:
  """Index -> preprocessed example of the shard, or a zero example past its end."""

  def __init__(self, source, preprocess: Preprocess, indices: Sequence[int]):
    self.source, self.preprocess, self.indices = source, preprocess, indices
    first = self._real(indices[0] if indices else 0)
    self.padding = {k: (np.zeros_like(v) if k != "id" else "") for k, v in first.items()}
    self.padding["_mask"] = np.float32(0)

  def _real(self, index: int) -> dict:
    example = self.source[index]
    out = self.preprocess(example)
    ident = example.get("id", str(index))
    out["id"] = ident.decode() if isinstance(ident, bytes) else str(ident)
    out["_mask"] = np.float32(1)
    return out

  def __call__(self, i: int) -> dict:
    return self._real(self.indices[i]) if i < len(self.indices) else dict(self.padding)


def eval_batches(source, preprocess: Preprocess, batch_size: int, shard_index: int = 0,
                 shard_count: int = 1) -> grain.MapDataset:
  """Each example of this shard once, in full batches (padding rows: `_mask` 0);
  every shard yields the same number of batches."""
  if len(source) == 0:
    raise DataError("cannot evaluate on an empty split")
  per_shard = -(-len(source) // shard_count)
  num_batches = -(-per_shard // batch_size)
  indices = list(range(len(source)))[shard_index::shard_count]
  fetch = _PaddedExample(source, preprocess, indices)
  return grain.MapDataset.range(num_batches * batch_size).map(fetch).batch(batch_size)
