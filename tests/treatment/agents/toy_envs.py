"""Toy environments with known optima, written to the agents' env protocol."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from medjax.treatment.agents.protocol import select

# ---------------------------------------------------------------------------
# 1-D target tracking (continuous): x0 ~ U(-2, 2), x' = x + 0.5 a with a in
# [-1, 1], reward -x'^2. No terminal state: `AutoReset(Tracking(), 8)` cuts
# episodes at 8 steps. Moving straight to 0 at full speed (a = clip(-2x)) is
# optimal for every horizon.
# ---------------------------------------------------------------------------

TRACK_STEP = 0.5
TRACK_HORIZON = 8


@dataclasses.dataclass(frozen=True)
class Tracking:

  def reset(self, params, key):
    del params
    x = jax.random.uniform(key, (), minval=-2.0, maxval=2.0)
    return x, x[None]

  def step(self, params, x, action, key):
    del params, key
    x = x + TRACK_STEP * action[0]
    return x, x[None], -x**2, jnp.zeros((), bool), {}


def tracking_optimum(num: int = 200_000, seed: int = 0) -> float:
  """Mean 8-step return of the optimal policy (numpy Monte Carlo, SE ~ 0.002)."""
  x = np.random.default_rng(seed).uniform(-2.0, 2.0, num)
  total = np.zeros(num)
  for _ in range(TRACK_HORIZON):
    x = x + TRACK_STEP * np.clip(-x / TRACK_STEP, -1.0, 1.0)
    total -= x**2
  return float(total.mean())


# ---------------------------------------------------------------------------
# A random tabular MDP (discrete): S states, A actions, reward R[s, a], episode
# ending after each step with probability 1 - CONTINUE, so the expected
# undiscounted return equals the CONTINUE-discounted value.
# ---------------------------------------------------------------------------

CONTINUE = 0.9


class TabularParams(NamedTuple):
  transitions: jax.Array  # (S, A, S)
  rewards: jax.Array  # (S, A)
  initial: jax.Array  # (S,)


def random_mdp(num_states: int = 6, num_actions: int = 3, seed: int = 0) -> TabularParams:
  rng = np.random.default_rng(seed)
  p = rng.dirichlet(np.full(num_states, 0.3), size=(num_states, num_actions))
  r = rng.uniform(0.0, 1.0, (num_states, num_actions))
  d0 = rng.dirichlet(np.ones(num_states))
  return TabularParams(*(jnp.asarray(a, jnp.float32) for a in (p, r, d0)))


@dataclasses.dataclass(frozen=True)
class Tabular:
  num_states: int

  def reset(self, params: TabularParams, key):
    s = jax.random.categorical(key, jnp.log(params.initial))
    return s, jax.nn.one_hot(s, self.num_states)

  def step(self, params: TabularParams, s, action, key):
    k_next, k_end, k_reset = jax.random.split(key, 3)
    reward = params.rewards[s, action]
    nxt = jax.random.categorical(k_next, jnp.log(params.transitions[s, action]))
    done = jax.random.uniform(k_end) > CONTINUE
    fresh, _ = self.reset(params, k_reset)
    nxt = select(done, fresh, nxt)
    return nxt, jax.nn.one_hot(nxt, self.num_states), reward, done, {}


def policy_value_np(params: TabularParams, policy) -> float:
  """Exact expected return of a (S, A) policy: d0 (I - c P_pi)^-1 r_pi."""
  p, r, d0 = (np.asarray(a, np.float64) for a in params)
  pi = np.asarray(policy, np.float64)
  p_pi = np.einsum("sa,sat->st", pi, p)
  r_pi = (pi * r).sum(1)
  return float(d0 @ np.linalg.solve(np.eye(len(d0)) - CONTINUE * p_pi, r_pi))


def value_iteration_np(params: TabularParams, tol: float = 1e-12):
  """(optimal expected return, optimal deterministic policy (S,))."""
  p, r, d0 = (np.asarray(a, np.float64) for a in params)
  v = np.zeros(len(d0))
  while True:
    q = r + CONTINUE * np.einsum("sat,t->sa", p, v)
    new = q.max(1)
    if np.max(np.abs(new - v)) < tol:
      return float(d0 @ new), q.argmax(1)
    v = new
