"""PPO: GAE and losses against hand/numpy references; learning on toy envs."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.engine.errors import InputError
from medjax.treatment import sepsis_eval
from medjax.treatment.agents import policy, ppo, rollout
from medjax.treatment.agents.networks import ActorCritic
from medjax.treatment.agents.protocol import AutoReset, batch_reset
from tests.treatment.agents import toy_envs


def _gae_loop(rewards, values, dones, last_value, gamma, lam):
  """Plain numpy GAE, one env at a time."""
  t_len, n = rewards.shape
  adv = np.zeros((t_len, n))
  for j in range(n):
    running = 0.0
    for t in reversed(range(t_len)):
      next_value = last_value[j] if t == t_len - 1 else values[t + 1, j]
      live = 0.0 if dones[t, j] else 1.0
      delta = rewards[t, j] + gamma * next_value * live - values[t, j]
      running = delta + gamma * lam * live * running
      adv[t, j] = running
  return adv, adv + values


def test_gae_matches_numpy_loop():
  rng = np.random.default_rng(0)
  t_len, n = 13, 4
  rewards, values = rng.normal(size=(2, t_len, n))
  dones = rng.random((t_len, n)) < 0.2
  last = rng.normal(size=n)
  adv, ret = ppo.gae(jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(dones),
                     jnp.asarray(last), 0.97, 0.9)
  ref_adv, ref_ret = _gae_loop(rewards, values, dones, last, 0.97, 0.9)
  np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-5)


def test_gae_lambda_one_is_discounted_return_minus_value():
  rewards = jnp.array([[1.0], [2.0], [3.0]])
  values = jnp.array([[0.5], [0.0], [1.0]])
  dones = jnp.array([[False], [True], [False]])
  adv, ret = ppo.gae(rewards, values, dones, jnp.array([10.0]), 0.5, 1.0)
  # Episode 1 ends after step 1: returns 1 + 0.5 * 2 = 2 and 2; step 2 bootstraps 10.
  np.testing.assert_allclose(ret[:, 0], [2.0, 2.0, 3.0 + 0.5 * 10.0], rtol=1e-6)
  np.testing.assert_allclose(adv[:, 0], [1.5, 2.0, 7.0], rtol=1e-6)


def test_clipped_surrogate_by_hand():
  ratio = np.array([1.5, 0.5, 1.1, 0.7])
  adv = jnp.array([1.0, 1.0, -2.0, -1.0])
  loss, frac = ppo.clipped_surrogate(jnp.log(ratio), jnp.zeros(4), adv, 0.2)
  # min(r A, clip(r) A): 1.2, 0.5, -2.2, -0.8 -> mean -0.325; 3 of 4 ratios clipped.
  np.testing.assert_allclose(loss, 0.325, rtol=1e-5)
  np.testing.assert_allclose(frac, 0.75)


def test_value_loss_clipping_by_hand():
  v, old, ret = jnp.array([2.0]), jnp.array([1.0]), jnp.array([3.0])
  np.testing.assert_allclose(ppo.value_loss(v, old, ret, 0.2, False), 0.5)
  # clipped prediction 1.2: max((2 - 3)^2, (1.2 - 3)^2) / 2 = 1.62
  np.testing.assert_allclose(ppo.value_loss(v, old, ret, 0.2, True), 1.62, rtol=1e-6)


def _train(agent, num_updates, seed=0):
  """(final state, last metrics, compiled update, compile s, training s)."""
  key = jax.random.key(seed)
  state = agent.init(key)
  start = time.perf_counter()
  update = jax.jit(agent.update).lower(state, key).compile()
  compiled = time.perf_counter()
  for k in jax.random.split(jax.random.fold_in(key, 1), num_updates):
    state, metrics = update(state, k)
  jax.block_until_ready(state)
  return state, metrics, update, compiled - start, time.perf_counter() - compiled


def _tracking_agent(**overrides):
  space = policy.Box((-1.0,), (1.0,))
  settings = dict(num_envs=32, num_steps=32, num_epochs=4, num_minibatches=4,
                  gamma=0.9, learning_rate=3e-3)
  config = ppo.PpoConfig(**(settings | overrides))
  env = AutoReset(toy_envs.Tracking(), toy_envs.TRACK_HORIZON)
  return ppo.Ppo(env, None, ActorCritic(space, hidden=(32, 32)), space, config)


def _tracking_return(agent, params, num_envs=4096):
  """Mean return of deterministic episodes, and the mask's minimum (1: none ended)."""
  key = jax.random.key(7)
  env_state, obs = batch_reset(agent.env, None, key, num_envs)
  act = rollout.policy_controller(agent.apply, agent.space, params)
  _, rewards, mask = rollout.episode_traces(agent.env, None, act, None, env_state, obs,
                                            jax.random.fold_in(key, 1),
                                            toy_envs.TRACK_HORIZON)
  return jnp.sum(rewards * mask, 0).mean(), mask.min()


@pytest.fixture(scope="module")
def tracking():
  """A PPO agent trained for 60 updates on the tracking env, and its evaluations."""
  agent = _tracking_agent()
  evaluate = jax.jit(lambda params: _tracking_return(agent, params))
  before = evaluate(agent.init(jax.random.key(0)).params)
  state, metrics, update, compile_s, train_s = _train(agent, 60)
  return dict(agent=agent, state=state, metrics=metrics, update=update, before=before,
              after=evaluate(state.params), seconds=(compile_s, train_s))


@pytest.fixture(scope="module")
def fresh():
  """A tracking agent after 2 updates (cheap: the default run's update tests)."""
  agent = _tracking_agent(num_envs=8, num_steps=8, num_epochs=1, num_minibatches=2)
  state, _, update, _, _ = _train(agent, 2)
  return dict(agent=agent, state=state, update=update)


@pytest.mark.slow
def test_ppo_continuous_tracking_reaches_optimum(tracking):
  optimum = toy_envs.tracking_optimum()  # about -0.75; doing nothing gives -10.7
  (before, _), (after, min_mask) = tracking["before"], tracking["after"]
  compile_s, train_s = tracking["seconds"]
  print(f"tracking: optimum {optimum:.3f}, before {before:.3f}, after {after:.3f}; "
        f"compile {compile_s:.1f}s, 60 updates (61k env steps) {train_s:.1f}s")
  assert float(min_mask) == 1.0  # no episode ends before the horizon
  assert before < optimum - 3.0
  assert after > optimum - 0.1  # within 0.1 of the optimum (1% of the gap from 0)
  assert np.isfinite(float(tracking["metrics"]["loss"]))
  assert float(tracking["metrics"]["episodes"]) > 0


@pytest.mark.slow
def test_ppo_discrete_tabular_reaches_optimum():
  mdp = toy_envs.random_mdp()
  num_states, num_actions = mdp.rewards.shape
  space = policy.Discrete(num_actions)
  config = ppo.PpoConfig(num_envs=32, num_steps=32, num_epochs=4, num_minibatches=4,
                         gamma=1.0, learning_rate=3e-3, ent_coef=0.003)
  agent = ppo.Ppo(toy_envs.Tabular(num_states), mdp,
                  ActorCritic(space, hidden=(32, 32)), space, config)
  optimum, best = toy_envs.value_iteration_np(mdp)
  uniform = toy_envs.policy_value_np(mdp, np.full((num_states, num_actions),
                                                  1 / num_actions))
  state, metrics, _, compile_s, train_s = _train(agent, 80)
  stochastic = sepsis_eval.tabular_policy(agent.apply, state.params, num_states)
  greedy = sepsis_eval.tabular_policy(agent.apply, state.params, num_states, greedy=True)
  value = toy_envs.policy_value_np(mdp, stochastic)
  greedy_value = toy_envs.policy_value_np(mdp, greedy)
  print(f"tabular: optimum {optimum:.4f}, uniform {uniform:.4f}, PPO {value:.4f} "
        f"(greedy {greedy_value:.4f}); compile {compile_s:.1f}s, "
        f"80 updates (82k env steps) {train_s:.1f}s")
  assert optimum - uniform > 0.5  # the test MDP has something to learn
  assert value > optimum - 0.05 * (optimum - uniform)  # 95% of the gap closed
  np.testing.assert_array_equal(np.argmax(greedy, 1), best)  # the optimal actions
  # The logged training returns (per episode) approach the exact optimum too.
  assert abs(float(metrics["episode_return"]) - optimum) < 0.15 * optimum


def test_update_is_deterministic_and_counts_steps(fresh):
  state, update = fresh["state"], fresh["update"]
  a, ma = update(state, jax.random.key(4))
  b, mb = update(state, jax.random.key(4))
  c, _ = update(state, jax.random.key(5))
  leaves = lambda s: jax.tree.leaves(s.params)
  for x, y in zip(leaves(a), leaves(b)):
    np.testing.assert_array_equal(x, y)
  assert any(not np.array_equal(x, y) for x, y in zip(leaves(a), leaves(c)))
  assert int(a.step) == int(state.step) + 1 == 3 and set(ma) == set(mb)


def test_update_with_env_axis_sharded_over_a_mesh(fresh):
  devices = np.array(jax.devices()[:4])
  if devices.size < 4:
    pytest.skip("needs 4 devices")
  mesh = jax.sharding.Mesh(devices, ("data",))
  shard = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  repl = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  agent, state = fresh["agent"], fresh["state"]
  shardings = ppo.PpoState(
      jax.tree.map(lambda _: repl, state.params),
      jax.tree.map(lambda _: repl, state.opt_state),
      jax.tree.map(lambda _: shard, state.env_state), shard,
      jax.tree.map(lambda _: shard, state.episode), repl)
  sharded = jax.device_put(state, shardings)
  update = jax.jit(agent.update, out_shardings=(shardings, repl))
  new, _ = update(sharded, jax.random.key(1))
  ref, _ = fresh["update"](state, jax.random.key(1))
  assert new.obs.sharding.spec == jax.sharding.PartitionSpec("data")
  for x, y in zip(jax.tree.leaves(new.params), jax.tree.leaves(ref.params)):
    np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("kwargs", [dict(num_envs=0), dict(num_envs=3, num_steps=5)])
def test_bad_config_is_an_input_error(kwargs):
  with pytest.raises(InputError, match="ppo.num"):
    ppo.PpoConfig(**kwargs)
