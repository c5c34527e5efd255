"""The env protocol helpers and rollouts, replayed step by step in numpy."""

import jax
import jax.numpy as jnp
import numpy as np

from medjax.treatment.agents import policy, rollout
from medjax.treatment.agents.protocol import AutoReset, batch_reset, batch_step
from tests.treatment.agents import toy_envs

BOX = policy.Box((-1.0,), (1.0,))


def test_auto_reset_cuts_at_max_steps_and_keeps_the_final_obs():
  env = AutoReset(toy_envs.Tracking(), max_steps=3)
  state, obs = batch_reset(env, None, jax.random.key(0), 2)
  action = jnp.full((2, 1), 0.2)
  x = np.asarray(obs[:, 0])
  for t in range(3):
    state, obs, reward, done, info = batch_step(env, None, state, action,
                                                jax.random.key(t + 1))
    x = x + 0.1
    np.testing.assert_allclose(reward, -x**2, rtol=1e-5)
    np.testing.assert_allclose(info["final_obs"][:, 0], x, rtol=1e-5)
    assert bool(jnp.all(done == (t == 2))) and bool(jnp.all(info["truncated"] == done))
  np.testing.assert_array_equal(state.t, [0, 0])  # a fresh episode
  np.testing.assert_allclose(obs[:, 0], state.inner, rtol=1e-6)
  assert not np.allclose(obs[:, 0], x)


def test_first_episode_mask():
  done = jnp.array([[0, 0], [1, 0], [0, 0], [1, 1]], bool)
  np.testing.assert_array_equal(rollout.first_episode_mask(done),
                                [[1, 1], [1, 1], [0, 1], [0, 1]])


def _linear_critic(params, obs):
  """A fixed 'network': N(0.3, 1) actions and V(obs) = 2 * obs[0]."""
  del params
  return (jnp.full(obs.shape, 0.3), jnp.zeros(obs.shape)), 2.0 * obs[..., 0]


def test_collect_bootstraps_truncations_and_sums_finished_episodes():
  env = AutoReset(toy_envs.Tracking(), max_steps=3)
  num_envs, steps, gamma, scale = 3, 7, 0.9, 0.5
  env_state, obs = batch_reset(env, None, jax.random.key(0), num_envs)
  ro = rollout.collect(env, None, _linear_critic, BOX, None, env_state, obs,
                       rollout.EpisodeStats.zeros(num_envs), jax.random.key(1), steps,
                       gamma, reward_scale=scale)
  tr = ro.transitions
  x = np.asarray(tr.obs[0, :, 0], np.float64)
  returns, ep_return, finished = np.zeros(num_envs), [], 0.0
  for t in range(steps):
    np.testing.assert_allclose(tr.obs[t, :, 0], x, rtol=1e-5)
    np.testing.assert_allclose(tr.value[t], 2 * x, rtol=1e-5)
    x_next = x + 0.5 * np.tanh(np.asarray(tr.raw_action[t, :, 0]))
    reward = -x_next**2
    done = (t + 1) % 3 == 0  # every env is cut after 3 steps
    assert bool(np.all(np.asarray(tr.done[t]) == done))
    expected = reward * scale + (gamma * 2 * x_next if done else 0.0)
    np.testing.assert_allclose(tr.reward[t], expected, rtol=1e-4, atol=1e-6)
    returns += reward
    if done:
      ep_return.extend(returns)
      finished += num_envs
      returns[:] = 0
      x_next = np.asarray(tr.obs[t + 1, :, 0]) if t + 1 < steps else np.asarray(
          ro.obs[:, 0])
    x = x_next
  assert float(ro.finished["episodes"]) == finished
  np.testing.assert_allclose(ro.finished["return_sum"], np.sum(ep_return), rtol=1e-4)
  np.testing.assert_allclose(ro.episode.returns, returns, rtol=1e-4, atol=1e-6)
  np.testing.assert_array_equal(ro.episode.lengths, [1] * num_envs)
  np.testing.assert_allclose(ro.last_value, 2 * ro.obs[:, 0], rtol=1e-6)


def test_episode_traces_masks_after_the_first_episode():
  env = AutoReset(toy_envs.Tracking(), max_steps=3)
  env_state, obs = batch_reset(env, None, jax.random.key(0), 2)

  def counter(count, obs, key):
    del key
    return count + 1, jnp.full((obs.shape[0], 1), -1.0)

  infos, rewards, mask = rollout.episode_traces(env, None, counter, jnp.zeros(()),
                                                env_state, obs, jax.random.key(1), 5)
  np.testing.assert_array_equal(mask, [[1, 1]] * 3 + [[0, 0]] * 2)
  assert rewards.shape == (5, 2) and infos["truncated"].shape == (5, 2)
  x = np.asarray(obs[:, 0]) - 0.5 * np.arange(1, 4)[:, None]
  np.testing.assert_allclose(rewards[:3], -x**2, rtol=1e-5)
