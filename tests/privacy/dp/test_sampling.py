"""Poisson sampler: inclusion frequency, padding and mask, truncation, resume, shards."""

import numpy as np

from medjax.privacy.dp import sampling
from tests.privacy.dp.tiny import Source


def _source(n):
  x = np.arange(n, dtype=np.float32)[:, None]
  return Source(x, np.arange(n, dtype=np.float32))


def test_each_example_joins_with_probability_q():
  n, q, steps = 200, 0.1, 500
  it = sampling.PoissonBatches(_source(n), q, capacity=64, seed=0)
  counts = np.zeros(n)
  for _ in range(steps):
    b = next(it)
    real = b["_mask"] > 0
    counts[b["y"][real].astype(int)] += 1
  # mean inclusion rate: SE sqrt(q (1-q) / (n steps)) ~ 0.0009
  assert abs(counts.mean() / steps - q) < 0.004
  # per-example counts ~ Binomial(steps, q): variance steps q (1 - q) = 45
  assert 30 < counts.var() < 62


def test_batches_are_padded_to_capacity_and_masked():
  it = sampling.PoissonBatches(_source(50), 0.2, capacity=24, seed=1)
  for step in range(20):
    b = next(it)
    ids = sampling.draw(50, 0.2, 24, 1, step)
    assert b["x"].shape == (24, 1) and b["_mask"].sum() == len(ids)
    np.testing.assert_array_equal(b["y"][:len(ids)], ids)
    assert not b["_mask"][len(ids):].any()


def test_truncation_keeps_at_most_capacity_distinct_examples():
  sizes = [len(sampling.draw(100, 0.5, 10, 0, s)) for s in range(30)]
  assert max(sizes) == 10
  ids = sampling.draw(100, 0.5, 10, 0, 0)
  assert len(set(ids.tolist())) == len(ids)


def test_resume_from_state_replays_the_same_batches():
  it = sampling.PoissonBatches(_source(40), 0.3, capacity=24, seed=5)
  for _ in range(7):
    next(it)
  state = it.get_state()
  expected = [next(it)["y"] for _ in range(3)]
  again = sampling.PoissonBatches(_source(40), 0.3, capacity=24, seed=5)
  again.set_state(state)
  for e in expected:
    np.testing.assert_array_equal(next(again)["y"], e)


def test_process_shards_split_the_global_batch():
  whole = next(sampling.PoissonBatches(_source(40), 0.4, capacity=24, seed=2))
  parts = [next(sampling.PoissonBatches(_source(40), 0.4, capacity=24, seed=2, shard_index=i,
                                        shard_count=2)) for i in range(2)]
  for k in whole:
    np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])
