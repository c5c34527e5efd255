"""Exact episodic evaluation: trajectory enumeration, linear solves, icu-sepsis MC."""

import importlib.util
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.treatment import sepsis_eval
from medjax.treatment.agents import policy
from medjax.treatment.agents.networks import ActorCritic


class Mdp(NamedTuple):
  transitions: jax.Array
  rewards: jax.Array
  initial: jax.Array
  terminal: jax.Array


def _small_mdp(live=3, actions=2, seed=0):
  """`live` states, then death, survival, s_inf (absorbing); reward 1 into survival."""
  rng = np.random.default_rng(seed)
  s = live + 3
  p = np.zeros((s, actions, s))
  p[:live] = rng.dirichlet(np.full(s - 1, 0.5), size=(live, actions)) @ np.eye(s - 1, s)
  p[live:, :, s - 1] = 1.0
  r = np.zeros((s, actions, s))
  r[:live, :, live + 1] = 1.0
  d0 = np.r_[rng.dirichlet(np.ones(live)), 0, 0, 0]
  pi = rng.dirichlet(np.ones(actions), size=s)
  mdp = Mdp(jnp.asarray(p), jnp.asarray(r), jnp.asarray(d0), jnp.arange(s) >= live)
  return mdp, pi


def _enumerate(mdp, pi, horizon):
  """(return, survival, death, unfinished, length) by walking every trajectory."""
  p, r, d0 = (np.asarray(a, np.float64) for a in mdp[:3])
  term = np.asarray(mdp.terminal)
  death, survival = len(d0) - 3, len(d0) - 2
  out = np.zeros(5)

  def walk(s, prob, t):
    if term[s]:
      out[1] += prob * (s == survival)
      out[2] += prob * (s == death)
      return
    if t == horizon:
      out[3] += prob
      return
    out[4] += prob
    for a in range(p.shape[1]):
      for nxt in range(len(d0)):
        q = prob * pi[s, a] * p[s, a, nxt]
        if q > 0:
          out[0] += q * r[s, a, nxt]
          walk(nxt, q, t + 1)

  for s in range(len(d0)):
    if d0[s] > 0:
      walk(s, d0[s], 0)
  return out


def test_outcomes_match_trajectory_enumeration():
  mdp, pi = _small_mdp()
  for horizon in (1, 2, 4):
    got = sepsis_eval.episode_outcomes(mdp, jnp.asarray(pi), horizon)
    ref = _enumerate(mdp, pi, horizon)
    np.testing.assert_allclose([got.expected_return, got.survival, got.death,
                                got.unfinished, got.mean_length], ref, rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(got.expected_return, got.survival, rtol=1e-5)
    np.testing.assert_allclose(got.survival + got.death + got.unfinished, 1.0, rtol=1e-5)


def test_long_horizon_matches_the_linear_solve():
  mdp, pi = _small_mdp(live=5, actions=3, seed=1)
  p, r = (np.asarray(a, np.float64) for a in mdp[:2])
  live = ~np.asarray(mdp.terminal)
  p_pi = np.einsum("sa,sat->st", pi, p)[np.ix_(live, live)]
  r_pi = np.einsum("sa,sat,sat->s", pi, p, r)[live]
  value = np.asarray(mdp.initial)[live] @ np.linalg.solve(np.eye(live.sum()) - p_pi, r_pi)
  got = sepsis_eval.survival_rate(mdp, jnp.asarray(pi, jnp.float32), horizon=500)
  np.testing.assert_allclose(got, value, rtol=1e-4)


def test_tabular_policy_from_a_discrete_network():
  space = policy.Discrete(4)
  net = ActorCritic(space, hidden=(8,))
  params = net.init(jax.random.key(0), jnp.zeros((1, 6)))
  params = jax.tree.map(lambda x: x * 50.0, params)  # make the policy far from uniform
  probs = sepsis_eval.tabular_policy(net.apply, params, 6)
  logits, _ = net.apply(params, jnp.eye(6))
  np.testing.assert_allclose(probs, jax.nn.softmax(logits), rtol=1e-5)
  np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-6)
  greedy = sepsis_eval.tabular_policy(net.apply, params, 6, greedy=True)
  np.testing.assert_array_equal(np.argmax(greedy, 1), np.argmax(logits, 1))
  np.testing.assert_array_equal(greedy.sum(1), 1.0)


def test_normalise_rows():
  pi = sepsis_eval.normalise_rows(jnp.array([[2.0, 2.0], [0.0, 0.0], [1.0, 3.0]]))
  np.testing.assert_allclose(pi, [[0.5, 0.5], [0.5, 0.5], [0.25, 0.75]])


def _icu_sepsis_tables():
  spec = importlib.util.find_spec("icu_sepsis")
  if spec is None:
    pytest.skip("icu-sepsis is not installed")
  path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "envs/assets"
  with np.load(path / "dynamics.npz") as data:
    tables = {k: data[k] for k in ("tx_mat", "r_mat", "d_0", "expert_policy")}
  return tables


def test_icu_sepsis_reward_is_one_on_survival_only():
  t = _icu_sepsis_tables()
  r, p = t["r_mat"], t["tx_mat"]
  s = r.shape[0]
  survival = s - sepsis_eval.SURVIVAL_FROM_END
  assert set(np.unique(r)) == {0.0, 1.0}
  np.testing.assert_array_equal(np.argwhere(r != 0)[:, 2], survival)
  reachable = p[:s - 3, :, survival] > 0
  np.testing.assert_array_equal(r[:s - 3, :, survival][reachable], 1.0)


def test_icu_sepsis_random_policy_matches_package_monte_carlo():
  t = _icu_sepsis_tables()
  pytest.importorskip("icu_sepsis")  # registers its gymnasium envs
  gym = pytest.importorskip("gymnasium")
  s, a = t["tx_mat"].shape[:2]
  mdp = Mdp(jnp.asarray(t["tx_mat"]), jnp.asarray(t["r_mat"]), jnp.asarray(t["d_0"]),
            jnp.arange(s) >= s - 3)
  exact = sepsis_eval.episode_outcomes(mdp, sepsis_eval.uniform_policy(s, a))
  env = gym.make("Sepsis/ICU-Sepsis-v2")
  rng, returns, num = np.random.default_rng(0), [], 2000
  for episode in range(num):
    env.reset(seed=episode)
    total, done = 0.0, False
    while not done:
      _, reward, terminated, truncated, _ = env.step(rng.integers(a))
      total, done = total + reward, terminated or truncated
    returns.append(total)
  mean, se = np.mean(returns), np.std(returns) / np.sqrt(num)
  print(f"random policy: exact {float(exact.expected_return):.4f}, "
        f"package MC {mean:.4f} +- {se:.4f} ({num} episodes)")
  assert abs(mean - float(exact.expected_return)) < 4 * se
  expert = sepsis_eval.normalise_rows(jnp.asarray(t["expert_policy"]))
  print(f"expert policy: exact {float(sepsis_eval.survival_rate(mdp, expert)):.4f}")
