"""CGM noise and meal scenarios against simglucose's CGMNoise and scenario classes."""

from datetime import datetime, timedelta

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("simglucose")

# pylint: disable=g-import-not-at-top,wrong-import-position
from simglucose.sensor.noise_gen import CGMNoise
from simglucose.simulation.scenario import CustomScenario
from simglucose.simulation.scenario_gen import RandomScenario

from medjax.treatment.envs import cgm, params, scenario


def _sensor_row(name):
  table = pd.read_csv(params.simglucose_dir() / params.SENSOR_FILE)
  return table[table.Name == name].iloc[0]


@pytest.mark.parametrize("name", ["Dexcom", "GuardianRT", "Navigator"])
def test_noise_blocks_equal_cgmnoise_given_the_same_normals(name):
  """Same standard normals -> simglucose's noise sequence, across block boundaries."""
  s = params.load_sensor(name)
  weights = cgm.interp_matrix(s.sample_time)
  blocks = 3
  total = blocks * weights.shape[0]
  gen = CGMNoise(_sensor_row(name), seed=11)
  want = np.array([next(gen) for _ in range(total)])
  z = np.random.RandomState(11).randn(1 + cgm.GRID_POINTS * blocks).astype(np.float32)
  state = cgm.init_noise(z[0], z[1:1 + cgm.GRID_POINTS], s)
  e, grid, got = state.e, state.grid, [weights @ np.asarray(state.grid)]
  for b in range(1, blocks):
    chunk = z[1 + cgm.GRID_POINTS * b:1 + cgm.GRID_POINTS * (b + 1)]
    e, grid = cgm.block_grid(e, grid[-1], jnp.asarray(chunk), s)
    got.append(weights @ np.asarray(grid))
  np.testing.assert_allclose(np.concatenate(got), want, atol=1e-4)


def test_stepped_noise_has_cgmnoise_statistics():
  """One normal per sample (the pending buffer) keeps the process's law."""
  s = params.load_sensor("Dexcom")
  n, count = 300, 200  # 15 h of 3-min samples (6 blocks) per series

  def series(key):
    k0, k1 = jax.random.split(key)

    def body(state, k):
      value, state = cgm.next_noise(state, jax.random.normal(k), s)
      return state, value
    return jax.lax.scan(body, cgm.random_noise(k0, s), jax.random.split(k1, n))[1]
  keys = jax.random.split(jax.random.key(0), count)
  ours = np.asarray(jax.jit(jax.vmap(series))(keys))
  gens = [CGMNoise(_sensor_row("Dexcom"), seed=seed) for seed in range(count)]
  theirs = np.array([[next(g) for _ in range(n)] for g in gens])
  lag = lambda x, k: np.corrcoef(x[:, :-k].ravel(), x[:, k:].ravel())[0, 1]
  # Tolerances are a few standard errors (seen over seeds: mean +-0.4, std +-0.3).
  assert abs(ours.mean() - theirs.mean()) < 2.0
  assert ours.std() == pytest.approx(theirs.std(), rel=0.08)
  assert lag(ours, 1) == pytest.approx(lag(theirs, 1), abs=0.005)  # the spline
  assert lag(ours, 10) == pytest.approx(lag(theirs, 10), abs=0.06)  # the AR(1)


def test_custom_scenario_matches_get_action():
  meals = [(0.5, 30), (7.25, 55.5), (12.0, 80), (23.99, 10)]
  start = datetime(2018, 1, 1, 0, 0, 0)
  ref = CustomScenario(start, meals)
  ours = scenario.custom(meals, 6)
  minutes = np.arange(24 * 60 + 5)
  got = np.asarray(jax.vmap(lambda t: scenario.meal_at(ours, t))(minutes))
  want = [ref.get_action(start + timedelta(minutes=int(t))).meal for t in minutes]
  np.testing.assert_allclose(got, want)


def test_random_scenario_statistics_match_randomscenario():
  draws = 300
  start = datetime(2018, 1, 1, 0, 0, 0)
  theirs = []
  for seed in range(draws):
    sc = RandomScenario(start, seed=seed).scenario["meal"]
    theirs.append(list(zip(sc["time"], sc["amount"])))
  ours = jax.vmap(lambda k: scenario.random(k, days=1))(
      jax.random.split(jax.random.key(0), draws))
  # Meals per day, and mean time and amount of the breakfast / lunch / dinner slots.
  ours_count = np.asarray(ours.time >= 0).sum(1)
  assert abs(ours_count.mean() - np.mean([len(m) for m in theirs])) < 0.15
  for lo, hi in [(5 * 60, 9 * 60), (10 * 60, 14 * 60), (16 * 60, 20 * 60)]:
    ref_t = [t for m in theirs for t, _ in m if lo <= t <= hi]
    ref_g = [g for m in theirs for t, g in m if lo <= t <= hi]
    t, g = np.asarray(ours.time).ravel(), np.asarray(ours.amount).ravel()
    inside = (t >= lo) & (t <= hi)
    assert abs(t[inside].mean() - np.mean(ref_t)) < 8  # minutes
    assert abs(g[inside].mean() - np.mean(ref_g)) < 1.5  # grams
    assert abs(t[inside].std() - np.std(ref_t)) < 8


def test_random_scenario_starting_later_drops_earlier_meals():
  key = jax.random.key(5)
  full, late = scenario.random(key, days=2), scenario.random(key, days=2, start_hour=13)
  keep = np.asarray(full.time) >= 13 * 60
  np.testing.assert_array_equal(np.asarray(late.time)[keep],
                                np.asarray(full.time)[keep] - 13 * 60)
  assert np.all(np.asarray(late.time)[~keep] == -1)
