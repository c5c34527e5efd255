"""Processes' rows of each global batch, put together, are the one-process batches."""

import grain
import numpy as np
import pytest

from medjax.engine import sharded_input


@pytest.mark.parametrize("count", [1, 2, 4])
def test_rows_of_all_processes_make_the_global_batches(count):
  ds = grain.MapDataset.source(list(range(13))).shuffle(seed=7).repeat(None)
  global_batch = 8
  expected = np.array([ds[i] for i in range(5 * global_batch)]).reshape(5, global_batch)
  parts = [sharded_input.process_rows(ds, global_batch // count, k, count)
           .batch(global_batch // count) for k in range(count)]
  got = np.stack([np.concatenate([np.asarray(p[b]) for p in parts]) for b in range(5)])
  np.testing.assert_array_equal(got, expected)


def test_each_process_reads_only_its_rows():
  read = []

  class Source:
    def __len__(self):
      return 16

    def __getitem__(self, i):
      read.append(i)
      return i

  rows = sharded_input.process_rows(grain.MapDataset.source(Source()), 2, 1, 2)
  assert [rows[j] for j in range(4)] == [2, 3, 6, 7]
  assert read == [2, 3, 6, 7]


def test_bad_index_is_an_error():
  with pytest.raises(ValueError, match="shard_index 2"):
    sharded_input.process_rows(grain.MapDataset.source([1]), 1, 2, 2)
