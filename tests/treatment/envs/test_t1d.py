"""The JAX T1D environment's own behaviour: clipping counted, NaN located, batching."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.engine.errors import InputError
from medjax.treatment.envs import params, scenario, t1d, t1d_model

pytestmark = pytest.mark.skipif(importlib.util.find_spec("simglucose") is None,
                                reason="the patient parameters ship with simglucose")
NAMES = ["adolescent#002", "adult#005", "child#007"]


def _env(**kw):
  return t1d.T1DEnv(params.load_pump(), params.load_sensor(), **kw)


def _rollout(env, p, scen, actions, key):
  """States and outputs of one patient over the given (T, 2) actions."""
  k_reset, k_run = jax.random.split(key)
  state, _ = env.reset(p, scen, k_reset)

  def body(state, xs):
    action, k = xs
    state, obs, reward, done, info = env.step(p, state, action, k)
    return state, (obs, info["bg"], info["clipped"])
  keys = jax.random.split(k_run, actions.shape[0])
  return jax.lax.scan(body, state, (actions, keys))


_jit_rollout = jax.jit(_rollout, static_argnums=0)  # one compilation per env and shape


def test_out_of_range_actions_are_clipped_and_counted():
  env, p = _env(noise=False), params.load_patients(NAMES)
  one = jax.tree.map(lambda a: a[1], p)
  actions = jnp.zeros((6, 2)).at[1, 0].set(-0.5).at[3].set(jnp.array([99.0, 45.0]))
  state, (_, bg, clipped) = _jit_rollout(env, one, scenario.custom([]), actions,
                                         jax.random.key(0))
  np.testing.assert_array_equal(clipped, [0, 1, 0, 2, 0, 0])
  assert int(state.clipped) == 3
  # A clipped rate acts as the pump's limit (30 U/min), not as the request.
  capped = actions.at[1, 0].set(0.0).at[3].set(jnp.array([30.0, 30.0]))
  _, (_, bg_capped, _) = _jit_rollout(env, one, scenario.custom([]), capped,
                                      jax.random.key(0))
  np.testing.assert_allclose(bg, bg_capped, rtol=1e-6)


def test_nan_state_is_reported_with_patient_and_step():
  env, p = _env(), params.load_patients(NAMES)
  actions = jnp.zeros((3, 8, 2)).at[2, 5, 0].set(jnp.nan)
  keys = jax.random.split(jax.random.key(1), 3)
  run = jax.vmap(lambda p, a, k: _rollout(env, p, scenario.custom([]), a, k)[0])
  states = run(p, actions, keys)
  np.testing.assert_array_equal(states.nan_step, [-1, -1, 5])
  with pytest.raises(t1d.NonFiniteStateError, match=r"child#007 at step 5"):
    t1d.check_finite(states, NAMES)
  t1d.check_finite(jax.tree.map(lambda a: a[:2], states), NAMES[:2])  # fine ones pass


@pytest.mark.slow  # end-to-end: run with -m slow (the default run stays under 10 min)
def test_vmap_over_patients_and_scenarios_equals_single_runs():
  env, p = _env(), params.load_patients(NAMES)
  scens = jax.vmap(lambda k: scenario.random(k, days=1, start_hour=6))(
      jax.random.split(jax.random.key(2), 2))
  actions = jnp.full((40, 2), 0.01).at[:, 1].set(0.0)
  key = jax.random.key(3)

  def obs_of(p, s):
    return _rollout(env, p, s, actions, key)[1][0]
  grid = jax.jit(jax.vmap(jax.vmap(obs_of, (None, 0)), (0, None)))(p, scens)
  single_run = jax.jit(obs_of)
  assert grid.shape == (3, 2, 40)
  for i in (0, 2):
    for j in (0, 1):
      single = single_run(jax.tree.map(lambda a, i=i: a[i], p),
                      jax.tree.map(lambda a, j=j: a[j], scens))
      np.testing.assert_allclose(grid[i, j], single, rtol=1e-5)
  assert np.all(np.isfinite(grid)) and np.all(grid >= 39) and np.all(grid <= 600)


def test_sensor_sample_time_over_the_noise_grid_is_refused():
  sensor = params.load_sensor()._replace(sample_time=20)
  env = t1d.T1DEnv(params.load_pump(), sensor)
  p = jax.tree.map(lambda a: a[0], params.load_patients(NAMES))
  with pytest.raises(InputError, match="sample time of 20 min is over 15 min"):
    env.reset(p, scenario.custom([]), jax.random.key(0))


def test_random_initial_glucose_has_simglucose_moments():
  p = jax.tree.map(lambda a: a[0], params.load_patients(NAMES))
  x0 = jax.vmap(lambda k: t1d_model.random_initial_state(p, k))(
      jax.random.split(jax.random.key(4), 4000))
  base = np.asarray(p.x0)
  moved = [3, 4, 12]
  np.testing.assert_array_equal(np.delete(np.asarray(x0), moved, 1)[0],
                                np.delete(base, moved))
  se = np.sqrt(0.1 * base[moved] / 4000)
  assert np.all(np.abs(np.asarray(x0[:, moved]).mean(0) - base[moved]) < 4 * se)
  np.testing.assert_allclose(np.asarray(x0[:, moved]).var(0), 0.1 * base[moved],
                             rtol=0.1)
