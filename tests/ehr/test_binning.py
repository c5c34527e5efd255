"""Hourly binning, observation masks, time since last observation, tokens."""

import numpy as np

from medjax.ehr import binning

NAN = np.nan


def test_binning_masks_and_delta_by_hand():
  # Variable 0 at 0:10 (1) and 0:50 (3) -> bin 0 mean 2; at 2:00 (5) -> bin 2.
  # Variable 1 at 1:30 (7) -> bin 1; at 4:00 exactly the end of a 4-bin window (9) -> bin 3.
  # An event after the window (4:30) is dropped.
  times = np.array([10 / 60, 50 / 60, 2.0, 1.5, 4.0, 4.5])
  var = np.array([0, 0, 0, 1, 1, 1])
  values = np.array([1.0, 3.0, 5.0, 7.0, 9.0, 11.0])
  got = binning.bin_events(times, var, values, num_vars=2, num_bins=4)
  np.testing.assert_array_equal(got, [[2, NAN], [NAN, 7], [5, NAN], [NAN, 9]])
  mask = ~np.isnan(got)
  # delta[t] = time since the variable was last observed before bin t.
  np.testing.assert_array_equal(binning.time_since_last(mask), [
      [0, 0],
      [1, 1],  # var 0 seen in bin 0; var 1 never seen: 1 hour since the start
      [2, 1],  # var 0 not seen in bin 1; var 1 seen in bin 1
      [1, 2],  # var 0 seen in bin 2; var 1 not seen in bin 2
  ])
  np.testing.assert_array_equal(binning.time_since_last(mask, bin_hours=2.0)[2], [4, 2])


def test_bin_set_equals_per_stay_binning():
  rng = np.random.default_rng(0)
  stays = [(np.sort(rng.uniform(0, 48, n)), rng.integers(0, 3, n), rng.normal(size=n))
           for n in (5, 0, 9)]
  stay = np.repeat(np.arange(3), [len(s[0]) for s in stays])
  flat = [np.concatenate([s[k] for s in stays]) for k in range(3)]
  together = binning.bin_many(stay, *flat, num_stays=3, num_vars=3)
  for i, s in enumerate(stays):
    np.testing.assert_array_equal(together[i], binning.bin_events(*s, num_vars=3))


def test_tokens_one_per_timestamp():
  times = np.array([0.5, 0.5, 2.0, 50.0])
  var = np.array([0, 2, 1, 0])
  values = np.array([1.0, 2.0, 3.0, 4.0])
  token_times, grid = binning.tokens(times, var, values, num_vars=3)
  np.testing.assert_array_equal(token_times, [0.5, 2.0])
  np.testing.assert_array_equal(grid, [[1, NAN, 2], [NAN, 3, NAN]])
