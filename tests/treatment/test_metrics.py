"""Glycaemic metrics against numpy references, simglucose, and scipy intervals."""

import jax
import numpy as np
import pytest
import scipy.stats

from medjax.engine.errors import InputError
from medjax.treatment import metrics


def _np_metrics(bg):
  """Reference for one episode's valid readings (a 1-D numpy array)."""
  f = 1.509 * (np.log(bg)**1.084 - 5.381)
  rl = np.where(f < 0, 10 * f**2, 0.0)
  rh = np.where(f > 0, 10 * f**2, 0.0)
  return dict(time_in_range=np.mean((bg >= 70) & (bg <= 180)),
              time_below_70=np.mean(bg < 70), time_below_54=np.mean(bg < 54),
              time_above_180=np.mean(bg > 180), time_above_250=np.mean(bg > 250),
              mean_bg=bg.mean(), lbgi=rl.mean(), hbgi=rh.mean(),
              risk_index=rl.mean() + rh.mean())


def test_hand_computed_small_trace():
  out = metrics.glycaemic_metrics(np.array([60.0, 100.0, 200.0, 300.0]))
  assert float(out["time_in_range"]) == 0.25 and float(out["time_below_70"]) == 0.25
  assert float(out["time_below_54"]) == 0.0 and float(out["time_above_180"]) == 0.5
  assert float(out["time_above_250"]) == 0.25 and float(out["mean_bg"]) == 165.0
  f = 1.509 * (np.log([60.0, 100.0, 200.0, 300.0])**1.084 - 5.381)
  np.testing.assert_allclose(out["lbgi"], 10 * (f[0]**2 + f[1]**2) / 4, rtol=1e-5)
  np.testing.assert_allclose(out["hbgi"], 10 * (f[2]**2 + f[3]**2) / 4, rtol=1e-5)


def test_range_boundaries():
  out = metrics.glycaemic_metrics(np.array([54.0, 70.0, 180.0, 250.0]))
  assert float(out["time_in_range"]) == 0.5  # 70 and 180 are in range
  assert float(out["time_below_70"]) == 0.25  # 54 only
  assert float(out["time_below_54"]) == 0.0 and float(out["time_above_250"]) == 0.0
  assert float(out["time_above_180"]) == 0.25  # 250 only


def test_masked_batch_matches_numpy_per_episode():
  rng = np.random.default_rng(0)
  bg = rng.uniform(30.0, 400.0, (3, 4, 50))
  lengths = rng.integers(1, 51, (3, 4))
  mask = np.arange(50) < lengths[..., None]
  bg_garbage = np.where(mask, bg, np.nan)  # masked readings must not leak in
  out = metrics.glycaemic_metrics(bg_garbage, mask)
  for i in range(3):
    for j in range(4):
      ref = _np_metrics(bg[i, j, :lengths[i, j]])
      for name, value in ref.items():
        np.testing.assert_allclose(out[name][i, j], value, rtol=1e-4, err_msg=name)


def test_empty_episode_is_nan():
  mask = np.array([[1, 1, 0], [0, 0, 0]])
  out = metrics.glycaemic_metrics(np.full((2, 3), 100.0), mask)
  assert float(out["mean_bg"][0]) == 100.0
  assert all(np.isnan(float(v[1])) for v in out.values())


def test_matches_simglucose_risk_index():
  risk = pytest.importorskip("simglucose.analysis.risk")
  rng = np.random.default_rng(1)
  for bg in (rng.uniform(40, 110, 30), rng.uniform(120, 500, 30),
             rng.uniform(40, 500, 30), np.array([95.0])):
    lbgi, hbgi, ri = risk.risk_index(bg, len(bg))
    ours = metrics.glycaemic_metrics(bg, convention="simglucose")
    np.testing.assert_allclose([ours["lbgi"], ours["hbgi"], ours["risk_index"]],
                               [lbgi, hbgi, ri], rtol=1e-4, atol=1e-6)
  # On a one-sided trace the conventions agree; on a mixed one simglucose averages
  # each index over its own side's readings only, so it is larger.
  low = rng.uniform(40, 110, 30)
  np.testing.assert_allclose(metrics.glycaemic_metrics(low)["lbgi"],
                             risk.risk_index(low, 30)[0], rtol=1e-4)
  mixed = rng.uniform(40, 500, 30)
  assert float(metrics.glycaemic_metrics(mixed)["lbgi"]) < risk.risk_index(mixed, 30)[0]


def test_unknown_convention():
  with pytest.raises(InputError, match="kovatchev"):
    metrics.glycaemic_metrics(np.ones(3) * 100, convention="magni")


def test_t_interval_matches_scipy_and_ignores_masked_and_nan():
  rng = np.random.default_rng(2)
  x = rng.normal(0.6, 0.1, 40)
  mean, low, high = metrics.t_interval(np.concatenate([x, [np.nan, 99.0]]),
                                       mask=np.r_[np.ones(41), 0].astype(bool))
  ref = scipy.stats.t.interval(0.95, 39, loc=x.mean(), scale=scipy.stats.sem(x))
  np.testing.assert_allclose([mean, low, high], [x.mean(), *ref], rtol=1e-10)


def test_bootstrap_interval_close_to_t_and_reproducible():
  rng = np.random.default_rng(3)
  x = rng.normal(0.6, 0.1, 400)
  key = jax.random.key(0)
  boot = metrics.bootstrap_interval(x, key)
  t = metrics.t_interval(x)
  assert boot == metrics.bootstrap_interval(x, key)  # same key, same interval
  assert boot[1] < x.mean() < boot[2]
  np.testing.assert_allclose(boot[2] - boot[1], t[2] - t[1], rtol=0.15)


def test_summarize():
  per_episode = metrics.glycaemic_metrics(np.random.default_rng(4).uniform(
      50, 300, (20, 30)))
  summary = metrics.summarize(per_episode, method="bootstrap", key=jax.random.key(1))
  assert set(summary) == set(per_episode)
  tir = summary["time_in_range"]
  assert tir["n"] == 20 and tir["low"] < tir["mean"] < tir["high"]
  np.testing.assert_allclose(tir["mean"], np.mean(per_episode["time_in_range"]),
                             rtol=1e-6)
  with pytest.raises(InputError):
    metrics.summarize(per_episode, method="jackknife")
