"""The adapters: ICU-Sepsis on a small MDP in the package's format; T1D vs its env."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.engine.errors import InputError
from medjax.treatment.agents import adapters
from medjax.treatment.agents.adapters import SepsisEnv
from medjax.treatment.agents.protocol import batch_reset, batch_step
from medjax.treatment.envs import params, scenario, sepsis, t1d, t1d_model
from tests.treatment import toy_mdp

LIVE, ACTIONS = toy_mdp.LIVE, toy_mdp.ACTIONS


def test_sepsis_env_steps_resets_and_rewards(tmp_path):
  mdp = sepsis.load(toy_mdp.write(tmp_path / "dynamics.npz"))
  env = SepsisEnv(num_states=LIVE + 3)
  n = 256
  state, obs = batch_reset(env, mdp, jax.random.key(0), n)
  step = jax.jit(lambda st, a, k: batch_step(env, mdp, st, a, k))
  ended = 0
  for t in range(20):
    actions = jax.random.randint(jax.random.key(100 + t), (n,), 0, ACTIONS)
    prev = state
    state, obs, reward, done, info = step(state, actions, jax.random.key(t))
    final = np.argmax(np.asarray(info["final_obs"]), -1)
    assert np.all(np.asarray(prev.s) < LIVE)  # envs never sit in a terminal state
    np.testing.assert_array_equal(np.asarray(obs), jax.nn.one_hot(state.s, LIVE + 3))
    np.testing.assert_array_equal(np.asarray(done), final >= LIVE)
    np.testing.assert_array_equal(np.asarray(reward), final == LIVE + 1)
    np.testing.assert_array_equal(np.asarray(state.t)[np.asarray(done)], 0)
    assert not np.any(np.asarray(info["truncated"]))
    ended += int(done.sum())
  assert ended > n  # many episodes ended and restarted


def _adult():
  try:
    folder = params.simglucose_dir()
  except InputError:
    pytest.skip("simglucose's parameter files are not installed")
  patients = params.load_patients(["adult#001"], folder)
  env = t1d.T1DEnv(params.load_pump(folder=folder), params.load_sensor(folder=folder),
                   noise=False)
  return jax.tree.map(lambda x: jnp.asarray(x[0]), patients), env


@pytest.mark.slow  # end-to-end: run with -m slow (the default run stays under 10 min)
def test_t1d_task_wraps_the_env_step_for_step():
  p, env = _adult()
  task = adapters.T1DTask(env)
  key = jax.random.key(0)
  state, obs = task.reset(p, key)
  k_meals, k_env = jax.random.split(key)
  ref_state, ref_cgm = env.reset(p, scenario.random(k_meals, 1), k_env)
  np.testing.assert_allclose(obs[0], ref_cgm / 100, rtol=1e-6)
  basal = float(t1d_model.basal_rate(p)) * 1.5
  step = jax.jit(task.step)
  prev = ref_cgm
  for t in range(3):
    k = jax.random.key(t + 1)
    state, obs, reward, done, info = step(p, state, jnp.array([basal]), k)
    pump = jnp.array([basal, 0.0])
    ref_state, cgm, ref_reward, _, ref_info = env.step(p, ref_state, pump, k)
    minutes = 3.0 * (t + 1)
    phase = 2 * np.pi * minutes / 1440
    np.testing.assert_allclose(obs, [cgm / 100, (cgm - prev) / 10, ref_info["meal"] / 10,
                                     np.sin(phase), np.cos(phase)], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reward, ref_reward, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(info["insulin"], ref_info["insulin"], rtol=1e-6)
    prev = cgm
  risk = adapters.T1DTask(env, reward="risk")
  _, _, reward, _, info = risk.step(p, risk.reset(p, key)[0], jnp.array([basal]), key)
  np.testing.assert_allclose(reward, -info["risk"], rtol=1e-6)
  with pytest.raises(InputError):
    adapters.T1DTask(env, reward="tir")


def test_dosing_scales_the_patients_own_doses():
  try:
    folder = params.simglucose_dir()
  except InputError:
    pytest.skip("simglucose's parameter files are not installed")
  names = ["adult#001", "child#003"]
  patients, quest = params.load_patients(names, folder), params.load_quest(names, folder)
  env = t1d.T1DEnv(params.load_pump(folder=folder), params.load_sensor(folder=folder))
  dosing = adapters.Dosing(adapters.T1DTask(env, bolus=True))
  for i in range(2):
    row = jax.tree.map(lambda x, i=i: x[i], (patients, quest))
    state = adapters.T1DTaskState(None, jnp.float32(120.0), jnp.float32(4.0))
    pump = dosing.pump_action(row, state, jnp.array([0.5, 1.5]))
    basal = patients.u2ss[i] * patients.BW[i] / 6000.0
    np.testing.assert_allclose(pump, [0.5 * basal, 1.5 * 4.0 / quest.CR[i]], rtol=1e-6)
  absolute = adapters.Dosing(adapters.T1DTask(env, bolus=True), scaled=False)
  np.testing.assert_allclose(absolute.pump_action(row, state, jnp.array([0.02])), [0.02, 0.0])
  with pytest.raises(ValueError, match="bolus=True"):
    adapters.Dosing(adapters.T1DTask(env))
