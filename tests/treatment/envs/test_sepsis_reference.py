"""Exact policy values of the JAX ICU-Sepsis MDP against icu-sepsis's own environment."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")
pytest.importorskip("icu_sepsis")

# pylint: disable-next=g-import-not-at-top,wrong-import-position
from medjax.treatment.envs import sepsis

EPISODES = 2000


@pytest.fixture(scope="module")
def mdp():
  return sepsis.load()


def _reference_returns(which: str, episodes: int, seed: int) -> np.ndarray:
  """Monte-Carlo returns of icu-sepsis's registered environment (500-step limit)."""
  env = gymnasium.make("Sepsis/ICU-Sepsis-v2")
  policy = (env.unwrapped.expert_policy if which == "expert"
            else np.full((env.unwrapped.num_states, 25), 1 / 25))
  rng = np.random.default_rng(seed)
  returns = np.zeros(episodes)
  state, _ = env.reset(seed=seed)
  for i in range(episodes):
    done = False
    while not done:
      action = rng.choice(policy.shape[1], p=policy[state])
      state, reward, term, trunc, _ = env.step(action)
      returns[i] += reward
      done = term or trunc
    state, _ = env.reset()
  return returns


def _episode(mdp, cdf, key, steps=250):
  """Return and end flag of one JAX episode; P(episode > 250 steps) ~ 1e-10."""
  k0, k_run = jax.random.split(key)

  def body(carry, k):
    state, done, total = carry
    ka, ks = jax.random.split(k)
    action = sepsis.sample(cdf, (state.s,), ka)
    nxt, reward, term, trunc = sepsis.step(mdp, state, action, ks)
    total = total + jnp.where(done, 0.0, reward)
    return (nxt, done | term | trunc, total), None
  init = (sepsis.reset(mdp, k0), jnp.array(False), jnp.array(0.0))
  (_, done, total), _ = jax.lax.scan(body, init, jax.random.split(k_run, steps))
  return total, done


# One compilation for both policies (the policy's CDF is an argument).
_episodes = jax.jit(jax.vmap(_episode, in_axes=(None, None, 0)))


def _jax_returns(mdp, policy, episodes: int, seed: int):
  cdf = jnp.cumsum(policy, axis=1)
  cdf = cdf / jnp.where(cdf[:, -1:] > 0, cdf[:, -1:], 1.0)
  total, done = _episodes(mdp, cdf, jax.random.split(jax.random.key(seed), episodes))
  assert bool(jnp.all(done))
  return np.asarray(total)


@pytest.mark.parametrize("which", ["expert", "random"])
def test_exact_value_matches_reference_monte_carlo(mdp, which):
  policy = mdp.expert if which == "expert" else sepsis.uniform_policy(mdp)
  exact = float(sepsis.policy_value(mdp, policy))
  ref = _reference_returns(which, EPISODES, seed=7)
  se = ref.std(ddof=1) / np.sqrt(len(ref))
  print(f"{which}: exact {exact:.4f}, icu-sepsis MC {ref.mean():.4f} +- {se:.4f}")
  assert abs(exact - ref.mean()) < 3 * se


def test_jax_environment_returns_match_exact_values(mdp):
  for policy in (mdp.expert, sepsis.uniform_policy(mdp)):
    returns = _jax_returns(mdp, policy, 4000, seed=3)
    se = returns.std(ddof=1) / np.sqrt(len(returns))
    assert abs(float(sepsis.policy_value(mdp, policy)) - returns.mean()) < 3 * se


def test_exact_values_agree_with_float64_numpy(mdp):
  tx = np.asarray(mdp.transitions, np.float64)
  r = np.asarray(mdp.rewards, np.float64)
  pi = np.asarray(mdp.expert, np.float64)
  live = 713
  p = np.einsum("sa,sat->st", pi, tx)[:live, :live]
  rew = np.einsum("sa,sat,sat->s", pi, tx, r)[:live]
  want = np.linalg.solve(np.eye(live) - p, rew)
  np.testing.assert_allclose(np.asarray(sepsis.policy_values(mdp, mdp.expert))[:live],
                             want, atol=2e-5)


def test_value_iteration_beats_expert_and_random(mdp):
  values, greedy = jax.jit(sepsis.value_iteration)(mdp)
  optimum = float(mdp.initial @ values)
  greedy_value = float(sepsis.policy_value(mdp, jax.nn.one_hot(greedy, 25)))
  print(f"optimal value {optimum:.4f} (greedy policy evaluated: {greedy_value:.4f})")
  assert greedy_value == pytest.approx(optimum, abs=1e-4)
  assert optimum > float(sepsis.policy_value(mdp, mdp.expert)) + 0.05
  # The optimum is a fixed point: no single action improves on it anywhere.
  q = jnp.einsum("sat,sat->sa", mdp.transitions, mdp.rewards) + jnp.einsum(
      "sat,t->sa", mdp.transitions, values)
  live = ~np.asarray(mdp.terminal)
  assert float(jnp.max(q.max(1)[live] - values[live])) < 1e-4
