import numpy as np
import pytest

from medjax.engine.errors import InputError
from medjax.segmentation.data import subset


def test_take_draws_distinct_examples_reproducibly():
  source = [{"i": i} for i in range(20)]
  a = subset.take(source, 5, seed=3)
  b = subset.take(source, 5, seed=3)
  got = [a[i]["i"] for i in range(len(a))]
  assert got == [b[i]["i"] for i in range(len(b))]
  assert len(set(got)) == 5 and got == sorted(got)
  expected = np.sort(np.random.default_rng(3).permutation(20)[:5])
  np.testing.assert_array_equal(got, expected)
  assert [subset.take(source, 5, seed=4)[i]["i"] for i in range(5)] != got


def test_zero_is_the_whole_source_and_bad_counts_name_the_flag():
  source = list(range(7))
  assert subset.take(source, 0, seed=0) is source
  with pytest.raises(InputError, match="train_count=8.*only 7"):
    subset.take(source, 8, seed=0)
  with pytest.raises(InputError, match="train_count=-1"):
    subset.take(source, -1, seed=0)
