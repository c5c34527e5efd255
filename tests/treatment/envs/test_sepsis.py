"""The sepsis MDP machinery on small random MDPs, against numpy and brute force."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.engine.errors import InputError
from medjax.treatment.envs import sepsis


def _random_mdp(seed, live=4, actions=2, terminal=2):
  """Live states reach a terminal state w.p. >= 0.2 per step; reward 1 on the first."""
  rng = np.random.default_rng(seed)
  s = live + terminal
  tx = np.zeros((s, actions, s))
  tx[:live] = rng.dirichlet(np.ones(s), (live, actions))
  tx[:live, :, live:] += 0.2
  tx[live:, :, -1] = 1.0  # terminal states are absorbing
  tx /= tx.sum(-1, keepdims=True)
  r = np.zeros_like(tx)
  r[:live, :, live] = 1.0
  d0 = np.r_[rng.dirichlet(np.ones(live)), np.zeros(terminal)]
  expert = rng.dirichlet(np.ones(actions), s)
  return tx, r, d0, expert


def test_policy_values_match_numpy_solve():
  tx, r, d0, expert = _random_mdp(0)
  mdp = sepsis.from_arrays(tx, r, d0, expert, num_terminal=2, dtype=jnp.float32)
  live = 4
  for gamma in (1.0, 0.9):
    p = np.einsum("sa,sat->st", expert, tx)[:live, :live]
    rew = np.einsum("sa,sat,sat->s", expert, tx, r)[:live]
    want = np.linalg.solve(np.eye(live) - gamma * p, rew)
    got = np.asarray(sepsis.policy_values(mdp, mdp.expert, gamma))
    np.testing.assert_allclose(got[:live], want, rtol=1e-5)
    np.testing.assert_array_equal(got[live:], 0.0)
    assert float(sepsis.policy_value(mdp, mdp.expert, gamma)) == pytest.approx(
        d0[:live] @ want, rel=1e-5)


def test_value_iteration_finds_the_best_deterministic_policy():
  tx, r, d0, expert = _random_mdp(1, live=4, actions=3)
  mdp = sepsis.from_arrays(tx, r, d0, expert, num_terminal=2)
  best = max(
      float(sepsis.policy_value(mdp, jax.nn.one_hot(jnp.array(choice + (0, 0)), 3)))
      for choice in itertools.product(range(3), repeat=4))
  values, greedy = sepsis.value_iteration(mdp, tol=1e-7)
  assert float(mdp.initial @ values) == pytest.approx(best, abs=1e-5)
  assert float(sepsis.policy_value(mdp, jax.nn.one_hot(greedy, 3))) == pytest.approx(
      best, abs=1e-5)


def test_sampling_follows_the_transition_table():
  tx, r, d0, expert = _random_mdp(2, live=3, actions=2, terminal=2)
  tx[0, 1] = [0.0, 0.5, 0.0, 0.2, 0.3]  # zero-probability states are never drawn
  mdp = sepsis.from_arrays(tx, r, d0, expert, num_terminal=2)
  keys = jax.random.split(jax.random.key(0), 40_000)
  state = sepsis.SepsisState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
  nxt, reward, term, _ = jax.vmap(lambda k: sepsis.step(mdp, state, 1, k))(keys)
  freq = np.bincount(np.asarray(nxt.s), minlength=5) / len(keys)
  se = np.sqrt(tx[0, 1] * (1 - tx[0, 1]) / len(keys))
  assert np.all(np.abs(freq - tx[0, 1]) <= 4 * se + 1e-12)
  np.testing.assert_array_equal(np.asarray(reward), np.asarray(nxt.s) == 3)
  np.testing.assert_array_equal(np.asarray(term), np.asarray(nxt.s) >= 3)
  first = jax.vmap(lambda k: sepsis.reset(mdp, k).s)(keys)
  freq0 = np.bincount(np.asarray(first), minlength=5) / len(keys)
  assert np.all(np.abs(freq0 - d0) <= 4 * np.sqrt(d0 * (1 - d0) / len(keys)) + 1e-12)


def test_episode_is_cut_at_max_steps():
  tx, r, d0, expert = _random_mdp(3)
  mdp = sepsis.from_arrays(tx, r, d0, expert, num_terminal=2)
  state = sepsis.SepsisState(jnp.zeros((), jnp.int32),
                             jnp.asarray(sepsis.MAX_STEPS - 1, jnp.int32))
  keys = jax.random.split(jax.random.key(1), 200)
  _, _, term, trunc = jax.vmap(lambda k: sepsis.step(mdp, state, 0, k))(keys)
  np.testing.assert_array_equal(np.asarray(trunc), ~np.asarray(term))


def test_bad_dynamics_files(tmp_path):
  tx, r, d0, expert = _random_mdp(4)
  np.savez(tmp_path / "dynamics.npz", tx_mat=tx, r_mat=r, d_0=d0)
  with pytest.raises(InputError, match=r"dynamics.npz: missing array 'expert_policy'"):
    sepsis.load(tmp_path)
  np.savez(tmp_path / "dynamics.npz", tx_mat=tx, r_mat=r, d_0=d0[:-1],
           expert_policy=expert)
  with pytest.raises(InputError, match=r"d_0 has shape \(5,\), expected \(6,\)"):
    sepsis.load(tmp_path / "dynamics.npz")
  with pytest.raises(InputError, match="no such file"):
    sepsis.load(tmp_path / "elsewhere.npz")
