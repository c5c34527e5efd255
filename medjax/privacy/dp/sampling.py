"""Poisson subsampling of a random-access training source, padded to a fixed capacity.

At every step each of the N training examples joins the batch independently with
probability q (drawn as Binomial(N, q) examples chosen uniformly without
replacement, which has the same distribution). The batch is padded with masked
rows (`_mask` 0) to `capacity` rows, so the train step compiles once.

Truncation policy: if more than `capacity` examples are drawn, a uniformly random
subset of `capacity` of them is kept and the rest dropped for that step. The
accountant charges for it (`accounting.py`); `accounting.auto_capacity` picks a
capacity for which it is negligible.

The draw of step t depends only on (seed, t), so the iterator's state is the step
(`get_state` / `set_state`, as the trainer checkpoints data iterators), and every
process draws the same global batch and keeps its own rows of it.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

_STREAM = 0x0D9  # separates these draws from other uses of the seed


class TrainSource(Protocol):
  """Random access to a task's training examples (`Task.train_source()`)."""

  def __len__(self) -> int:
    ...

  def batch(self, ids: np.ndarray, rows: int) -> dict[str, np.ndarray]:
    """Examples `ids` as rows 0..len(ids)-1 of a batch of `rows` rows, with `_mask`
    1 on them and 0 on the padding rows; one row per example on the leading axis."""
    ...


def draw(num_examples: int, q: float, capacity: int, seed: int, step: int) -> np.ndarray:
  """Ids of step `step`'s Poisson batch, truncated to `capacity` (sorted)."""
  rng = np.random.default_rng((seed, _STREAM, step))
  size = min(int(rng.binomial(num_examples, q)), capacity)
  return np.sort(rng.choice(num_examples, size=size, replace=False))


class PoissonBatches:
  """Endless Poisson batches of `source`: this process's `capacity / shard_count` rows."""

  def __init__(self, source: TrainSource, q: float, capacity: int, seed: int,
               shard_index: int = 0, shard_count: int = 1):
    if capacity % shard_count:
      raise ValueError(f"capacity {capacity} is not a multiple of {shard_count} processes")
    self.source, self.q, self.capacity, self.seed = source, q, capacity, seed
    self.num_examples = len(source)
    self.rows = capacity // shard_count
    self.first = shard_index * self.rows
    self.step = 0

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    ids = draw(self.num_examples, self.q, self.capacity, self.seed, self.step)
    self.step += 1
    return self.source.batch(ids[self.first:self.first + self.rows], self.rows)

  def get_state(self) -> dict[str, Any]:
    return {"step": self.step}

  def set_state(self, state: dict[str, Any]) -> None:
    self.step = int(state["step"])
