"""Host preprocessing and grain pipelines from a data source to numpy batches.

A source example is `{"image": (H, W, C), "mask": (H, W) uint8, "valid": (H, W)
uint8, "id": bytes}` (see `sources.load_source`). A preprocess function turns it
into `{"image": (H, W, C) float32, "label": (H, W) int32, "valid": (H, W) float32}`.
Batches add a leading example axis and `_mask` (B,) float32, 1 for real examples;
evaluation batches also carry `id` (B,) str ("" for padding).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import grain
import numpy as np

from medjax.engine import sharded_input
from medjax.segmentation.data.errors import DataError

Example = dict
PreprocessFn = Callable[[Example], Example]
DEFAULT_READ_OPTIONS = grain.ReadOptions(num_threads=4, prefetch_buffer_size=8)


def hu_window(image, low: float = -1000.0, high: float = 400.0) -> np.ndarray:
  """CT numbers clipped to [low, high] and scaled to [0, 1], float32."""
  image = np.asarray(image, np.float32)
  return np.clip((image - low) / (high - low), 0.0, 1.0).astype(np.float32)


def scale_uint8(image, channels: Sequence[int] | None = None) -> np.ndarray:
  """uint8 (H, W, C) -> float32 in [0, 1], keeping `channels` (all when None)."""
  image = np.asarray(image)
  if channels is not None:
    image = image[..., list(channels)]
  return image.astype(np.float32) / 255.0


def _targets(example: Example) -> dict:
  return {"label": np.asarray(example["mask"], np.int32),
          "valid": np.asarray(example["valid"], np.float32)}


def ct_preprocess(example: Example, low: float = -1000.0, high: float = 400.0) -> Example:
  """CT example -> HU-windowed image; use `functools.partial` to set the window."""
  return {"image": hu_window(example["image"], low, high), **_targets(example)}


def uint8_preprocess(example: Example, channels: Sequence[int] | None = None) -> Example:
  """uint8 (e.g. fundus RGB) example -> image / 255; `channels=(1,)` keeps green only."""
  return {"image": scale_uint8(example["image"], channels), **_targets(example)}


def _train_example(preprocess_fn: PreprocessFn, example: Example) -> Example:
  out = preprocess_fn(example)
  return {k: out[k] for k in ("image", "label", "valid")}


def _add_mask(batch: dict) -> dict:
  return {**batch, "_mask": np.ones(len(batch["label"]), np.float32)}


def train_dataset(source, preprocess_fn: PreprocessFn, batch_size: int, seed: int,
                  shard_index: int = 0, shard_count: int = 1,
                  read_options: grain.ReadOptions | None = None) -> grain.IterDataset:
  """Endless, per-epoch reshuffled batches: this process's rows of each global batch.

  Process `shard_index` of `shard_count` reads only its `batch_size` rows of every
  global batch of `batch_size * shard_count` (see `medjax.engine.sharded_input`),
  so the global batches are the same for any process count. Batches are
  prefetched by `read_options` (default: 4 threads, 8 batches ahead; grain's own
  default of 500 elements would be 500 batches here). The iterator's
  `get_state()` / `set_state()` resume exactly (checkpoint it with
  `grain.checkpoint.CheckpointSave` in an orbax `CheckpointManager`).
  """
  if len(source) == 0:
    raise DataError("cannot train on an empty source")
  ds = grain.MapDataset.source(source).shuffle(seed=seed).repeat(None)
  ds = sharded_input.process_rows(ds, batch_size, shard_index, shard_count)
  ds = ds.map(functools.partial(_train_example, preprocess_fn))
  ds = ds.batch(batch_size, drop_remainder=True).map(_add_mask)
  return ds.to_iter_dataset(read_options or DEFAULT_READ_OPTIONS)


class _PaddedExample:
  """Index -> preprocessed example of the shard, or a zero example past its end."""

  def __init__(self, source, preprocess_fn: PreprocessFn, indices: Sequence[int]):
    self.source, self.preprocess_fn, self.indices = source, preprocess_fn, indices
    first = self._real(indices[0]) if indices else self._real(0)
    self.padding = {k: (np.zeros_like(v) if k != "id" else "") for k, v in first.items()}
    self.padding["_mask"] = np.float32(0)

  def _real(self, index: int) -> Example:
    example = self.source[index]
    out = _train_example(self.preprocess_fn, example)
    ident = example.get("id", str(index))
    out["id"] = ident.decode() if isinstance(ident, bytes) else str(ident)
    out["_mask"] = np.float32(1)
    return out

  def __call__(self, i: int) -> Example:
    return self._real(self.indices[i]) if i < len(self.indices) else dict(self.padding)


def eval_batches(source, preprocess_fn: PreprocessFn, batch_size: int, shard_index: int = 0,
                 shard_count: int = 1) -> grain.MapDataset:
  """Each example of this shard once, in full batches; padding rows are zeros with `_mask` 0.

  Every shard yields the same number of batches (so processes stay in step);
  `len()` of the result is that number. Batches also hold `id` (B,) str.
  Iterate it directly, or call `.to_iter_dataset()` for threaded prefetch.
  """
  if len(source) == 0:
    raise DataError("cannot evaluate on an empty source")
  per_shard = -(-len(source) // shard_count)  # ceil: the largest shard
  num_batches = -(-per_shard // batch_size)
  indices = list(range(len(source)))[shard_index::shard_count]
  fetch = _PaddedExample(source, preprocess_fn, indices)
  return grain.MapDataset.range(num_batches * batch_size).map(fetch).batch(batch_size)
