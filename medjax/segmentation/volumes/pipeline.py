"""Grain pipelines over prepared volumes: random training patches and whole cases.

A source example is `builder.volume_features` (`image` (x, y, z, C) float32,
`mask` (x, y, z) uint8, `spacing`, `id`, `grid`). Training batches are
`{"image": (B, *patch, C), "label": (B, *patch) int32, "valid": (B, *patch),
"_mask": (B,)}` of patches drawn by `patches.sample_patch` (a fraction centred
on foreground classes). Each patch's random generator comes from the seed and
the example's global position in the endless shuffled stream, so the batches
are the same for any process count and resume exactly from the iterator state.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import grain
import numpy as np

from medjax.engine import sharded_input
from medjax.segmentation.data.errors import DataError
from medjax.segmentation.volumes import patches

_LOCATIONS_CACHE = 4096  # cases whose foreground voxel lists are kept per process


class _PatchSampler:
  """`(source example, rng) -> patch example`, caching each case's class locations."""

  def __init__(self, patch_size: Sequence[int], num_classes: int,
               foreground_fraction: float):
    self.patch_size = tuple(patch_size)
    self.num_classes = num_classes
    self.foreground_fraction = foreground_fraction
    self._locations = {}
    self._lock = threading.Lock()  # grain reads with several threads

  def locations(self, example):
    key = example["id"]
    with self._lock:
      found = self._locations.get(key)
    if found is None:
      found = patches.class_locations(np.asarray(example["mask"]), self.num_classes)
      with self._lock:
        if len(self._locations) >= _LOCATIONS_CACHE:
          self._locations.pop(next(iter(self._locations)))
        self._locations[key] = found
    return found

  def __call__(self, example, rng: np.random.Generator):
    label = np.asarray(example["mask"])
    return patches.sample_patch(np.asarray(example["image"]), label, self.patch_size, rng,
                                self.foreground_fraction, self.locations(example))


def _add_mask(batch: dict) -> dict:
  return {**batch, "_mask": np.ones(len(batch["label"]), np.float32)}


def train_dataset(source, patch_size: Sequence[int], num_classes: int, batch_size: int,
                  seed: int, foreground_fraction: float = 0.33, shard_index: int = 0,
                  shard_count: int = 1,
                  read_options: grain.ReadOptions | None = None) -> grain.IterDataset:
  """Endless per-epoch reshuffled batches of random patches (this process's rows)."""
  if len(source) == 0:
    raise DataError("cannot train on an empty source")
  sampler = _PatchSampler(patch_size, num_classes, foreground_fraction)
  ds = grain.MapDataset.source(source).shuffle(seed=seed).repeat(None)
  ds = ds.random_map(sampler, seed=seed)  # lazy: only the rows a process reads
  ds = sharded_input.process_rows(ds, batch_size, shard_index, shard_count)
  ds = ds.batch(batch_size, drop_remainder=True).map(_add_mask)
  return ds.to_iter_dataset(read_options or grain.ReadOptions(num_threads=2,
                                                              prefetch_buffer_size=4))


def case(example) -> dict:
  """One whole prepared case as numpy: image, label (int32), spacing, id, grid."""
  ident = example["id"]
  grid = example["grid"]
  return {"image": np.asarray(example["image"], np.float32),
          "label": np.asarray(example["mask"], np.int32),
          "spacing": tuple(float(s) for s in example["spacing"]),
          "id": ident.decode() if isinstance(ident, bytes) else str(ident),
          "grid": grid.decode() if isinstance(grid, bytes) else str(grid)}


def cases(source, shard_index: int = 0, shard_count: int = 1, limit: int = 0):
  """Yields `case(...)` for this shard's examples of `source` (the first `limit`, 0 = all)."""
  count = len(source) if not limit else min(limit, len(source))
  for i in range(shard_index, count, shard_count):
    yield case(source[i])
