"""Normalisation statistics come from the training split only."""

import numpy as np
import pytest

from medjax.ehr import normalise, synthetic


def test_statistics_use_training_stays_only():
  data = synthetic.generate(40, seed=1)
  train = np.arange(0, 40, 2)
  norm = normalise.Normaliser.fit(data, train)
  # Independent reference: loop over training stays, collect raw values per variable.
  for d, name in enumerate(data.variables):
    vals = np.concatenate([data.events(i)[2][data.events(i)[1] == d] for i in train])
    if name in normalise.LOG_VARIABLES:
      vals = np.log1p(vals)
    assert norm.mean[d] == pytest.approx(vals.mean(), rel=1e-5)
    assert norm.std[d] == pytest.approx(vals.std(), rel=1e-5)
  ages = data.static[train, 0]
  assert norm.static_mean[0] == pytest.approx(ages.mean(), rel=1e-5)
  # Changing every non-training stay leaves the statistics unchanged.
  test_events = ~np.isin(data.stay_of_event(), train)
  data.values[test_events] *= 1000.0
  data.static[1::2] = 1e6
  again = normalise.Normaliser.fit(data, train)
  np.testing.assert_array_equal(again.mean, norm.mean)
  np.testing.assert_array_equal(again.std, norm.std)
  np.testing.assert_array_equal(again.static_mean, norm.static_mean)


def test_series_static_and_json_round_trip():
  data = synthetic.generate(30, seed=2)
  norm = normalise.Normaliser.fit(data, np.arange(30))
  raw = np.array([[np.nan, 120.0, 16.0, 37.0, 97.0, 1.2]], np.float32)
  z = norm.series(raw)
  assert np.isnan(z[0, 0])
  assert z[0, 1] == pytest.approx((120.0 - norm.mean[1]) / norm.std[1], rel=1e-5)
  assert z[0, 5] == pytest.approx((np.log1p(1.2) - norm.mean[5]) / norm.std[5], rel=1e-5)
  # Age, Gender, Height (missing), ICUType 3, Weight.
  feats = norm.static_features(np.array([[50.0, 1.0, np.nan, 3.0, 70.0]], np.float32))
  age_z = (50.0 - norm.static_mean[0]) / norm.static_std[0]
  np.testing.assert_allclose(feats[0, :6], [age_z, 0, 1, 0, 0, 1], rtol=1e-5)
  np.testing.assert_array_equal(feats[0, 6:10], [0, 0, 1, 0])  # ICUType one-hot
  back = normalise.Normaliser.from_dict(norm.to_dict())
  np.testing.assert_array_equal(back.series(raw), z)
