"""k-shot training: a fixed random subset of a data source (`task.train_count`)."""

from __future__ import annotations

import numpy as np

from medjax.engine.errors import InputError


class Subset:
  """`source[indices[i]]` for i < len(indices): the same examples on every run."""

  def __init__(self, source, indices):
    self.source = source
    self.indices = [int(i) for i in indices]

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i):
    return self.source[self.indices[i]]


def subset_indices(size: int, count: int, seed: int) -> np.ndarray:
  """`count` distinct indices of range(size), drawn with `seed`, in increasing order."""
  return np.sort(np.random.default_rng(seed).permutation(size)[:count])


def take(source, count: int, seed: int, flag: str = "config.task.train_count"):
  """`source` itself when `count` is 0, else `count` of its examples drawn with `seed`.

  A GAN and a segmentation model given the same (count, seed) see the same images.
  """
  if count < 0:
    raise InputError(f"{flag}={count}: give 0 (all examples) or a positive count")
  if not count:
    return source
  if count > len(source):
    raise InputError(f"{flag}={count}: the training split has only {len(source)} "
                     "examples")
  return Subset(source, subset_indices(len(source), count, seed))
