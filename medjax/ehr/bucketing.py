"""Length-bucketed training batches for variable-length inputs, as a grain source.

Each epoch the training indices are shuffled, cut into pools of `pool_batches` batches,
sorted by length inside each pool and split into batches, and the batches shuffled: a
batch holds stays of similar length, so padding (and compute) shrinks while the order
stays random. Epoch e's plan depends only on (seed, e), so the source is a plain random-
access sequence and the grain iterator state (its position) checkpoints as usual.
"""

from __future__ import annotations

import numpy as np


def epoch_batches(lengths: np.ndarray, batch_size: int, pool_batches: int,
                  rng: np.random.Generator) -> list[np.ndarray]:
  """Positions into `lengths`, grouped into full batches of similar length."""
  order = rng.permutation(len(lengths))
  pool = batch_size * pool_batches
  batches = []
  for start in range(0, len(order), pool):
    chunk = order[start:start + pool]
    chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
    batches += [chunk[b:b + batch_size] for b in range(0, len(chunk) - batch_size + 1,
                                                        batch_size)]
  return [batches[i] for i in rng.permutation(len(batches))]


class BucketedBatches:
  """Random-access sequence of index batches over `epochs` epochs (effectively endless)."""

  def __init__(self, indices, lengths, batch_size: int, pool_batches: int, seed: int,
               epochs: int = 1_000_000):
    self.indices = np.asarray(indices)
    self.lengths = np.asarray(lengths)
    if len(self.indices) < batch_size:
      raise ValueError(f"{len(self.indices)} training examples < batch size {batch_size}")
    self.batch_size, self.pool_batches, self.seed = batch_size, pool_batches, seed
    self.per_epoch = len(self._plan(0))
    self.epochs = epochs
    self._cached = (0, self._plan(0))

  def _plan(self, epoch: int) -> list[np.ndarray]:
    rng = np.random.default_rng([self.seed, epoch])
    return epoch_batches(self.lengths, self.batch_size, self.pool_batches, rng)

  def __len__(self) -> int:
    return self.per_epoch * self.epochs

  def __getitem__(self, k: int) -> np.ndarray:
    epoch, position = divmod(int(k), self.per_epoch)
    cached = self._cached  # one read: prefetch threads may replace it meanwhile
    if cached[0] != epoch:
      cached = self._cached = (epoch, self._plan(epoch))
    return self.indices[cached[1][position]]
