"""The ICU-Sepsis MDP (icu-sepsis 2.0.1) as a JAX environment, with exact solvers.

716 states (the last three are death, survival and the absorbing s_inf), 25
actions (5 fluid x 5 vasopressor levels, flattened as fluid * 5 + vasopressor),
reward 1 on reaching survival, gamma 1, episodes cut at 500 steps. The tables
come from the wheel's `dynamics.npz` (found without importing icu_sepsis, whose
`__init__` imports gym) or from a given file or folder. Inadmissible actions use
the tabulated mean transitions, the package's default strategy.
"""

from __future__ import annotations

import importlib.util
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from medjax.engine.errors import InputError

DYNAMICS = "dynamics.npz"
KEYS = ("tx_mat", "r_mat", "d_0", "expert_policy")
NUM_TERMINAL = 3  # death, survival, s_inf
MAX_STEPS = 500


class SepsisMDP(NamedTuple):
  transitions: jax.Array  # (S, A, S) P(s' | s, a)
  rewards: jax.Array  # (S, A, S) r(s, a, s')
  initial: jax.Array  # (S,)
  expert: jax.Array  # (S, A) the clinicians' policy (zero rows at terminal states)
  terminal: jax.Array  # (S,) bool
  cdf: jax.Array  # (S, A, S) cumulative transitions, last entry 1 (for sampling)
  initial_cdf: jax.Array  # (S,)


class SepsisState(NamedTuple):
  s: jax.Array  # int32 state
  t: jax.Array  # int32 steps taken in the episode


def default_path() -> pathlib.Path:
  spec = importlib.util.find_spec("icu_sepsis")
  if spec is None or not spec.submodule_search_locations:
    raise InputError("icu-sepsis is not installed: pip install icu-sepsis==2.0.1, "
                     f"or give the path of its {DYNAMICS}")
  return pathlib.Path(list(spec.submodule_search_locations)[0]) / "envs/assets" / DYNAMICS


def load(path=None, dtype=jnp.float32) -> SepsisMDP:
  """The MDP from `path` (a dynamics.npz or the folder holding one)."""
  path = default_path() if path is None else pathlib.Path(path)
  if path.is_dir():
    path = path / DYNAMICS
  if not path.is_file():
    raise InputError(f"{path}: no such file")
  with np.load(path) as data:
    for key in KEYS:
      if key not in data.files:
        raise InputError(f"{path}: missing array {key!r} (has {', '.join(data.files)})")
    tx, r, d0, expert = (data[k] for k in KEYS)
  s, a = tx.shape[:2]
  expected = {"tx_mat": (s, a, s), "r_mat": (s, a, s), "d_0": (s,),
              "expert_policy": (s, a)}
  for key, arr in zip(KEYS, (tx, r, d0, expert)):
    if arr.shape != expected[key]:
      raise InputError(f"{path}: {key} has shape {arr.shape}, expected {expected[key]}")
  return from_arrays(tx, r, d0, expert, dtype=dtype)


def from_arrays(tx, r, d0, expert, num_terminal: int = NUM_TERMINAL,
                dtype=jnp.float32) -> SepsisMDP:
  """An MDP from numpy tables whose last `num_terminal` states are terminal."""
  s = tx.shape[0]
  terminal = np.arange(s) >= s - num_terminal
  cast = lambda x: jnp.asarray(x, dtype)
  cdf = lambda p: np.cumsum(p, -1) / np.sum(p, -1, keepdims=True)
  return SepsisMDP(cast(tx), cast(r), cast(d0), cast(expert), jnp.asarray(terminal),
                   cast(cdf(tx)), cast(cdf(d0)))


def sample(cdf, index, key):
  """The first j with cdf[index + (j,)] > u, u ~ U[0, 1): binary search, log2(S) reads."""
  u = jax.random.uniform(key, (), cdf.dtype)
  lo, hi = jnp.zeros((), jnp.int32), jnp.asarray(cdf.shape[-1] - 1, jnp.int32)
  for _ in range(int(np.ceil(np.log2(cdf.shape[-1])))):
    mid = (lo + hi) // 2
    right = cdf[index + (mid,)] <= u
    lo, hi = jnp.where(right, mid + 1, lo), jnp.where(right, hi, mid)
  return lo


def reset(mdp: SepsisMDP, key) -> SepsisState:
  return SepsisState(sample(mdp.initial_cdf, (), key), jnp.zeros((), jnp.int32))


def step(mdp: SepsisMDP, state: SepsisState, action, key):
  """(state, reward, terminated, truncated) after `action` in [0, 25)."""
  nxt = sample(mdp.cdf, (state.s, action), key)
  reward = mdp.rewards[state.s, action, nxt]
  t = state.t + 1
  terminated = mdp.terminal[nxt]
  return SepsisState(nxt, t), reward, terminated, (t >= MAX_STEPS) & ~terminated


def auto_reset(mdp: SepsisMDP, state: SepsisState, done, key) -> SepsisState:
  """`state`, or a fresh episode's first state where `done`."""
  fresh = reset(mdp, key)
  return jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh, state)


def uniform_policy(mdp: SepsisMDP) -> jax.Array:
  s, a = mdp.expert.shape
  return jnp.full((s, a), 1.0 / a, mdp.expert.dtype)


def _expected_reward(mdp: SepsisMDP):
  return jnp.einsum("sat,sat->sa", mdp.transitions, mdp.rewards)


def policy_values(mdp: SepsisMDP, policy, gamma: float = 1.0):
  """Exact state values of `policy` (S, A): one linear solve over live states."""
  live = ~mdp.terminal
  p_pi = jnp.einsum("sa,sat->st", policy, mdp.transitions)
  r_pi = jnp.sum(policy * _expected_reward(mdp), axis=1)
  # Terminal states are absorbing with value 0: zero their rows and columns.
  a = jnp.eye(p_pi.shape[0]) - gamma * p_pi * live[:, None] * live[None, :]
  return jnp.linalg.solve(a, jnp.where(live, r_pi, 0.0))


def policy_value(mdp: SepsisMDP, policy, gamma: float = 1.0):
  """Expected return of an episode under `policy` from the initial distribution."""
  return mdp.initial @ policy_values(mdp, policy, gamma)


def value_iteration(mdp: SepsisMDP, gamma: float = 1.0, tol: float = 1e-6,
                    max_iters: int = 10_000):
  """(optimal state values, greedy deterministic policy (S,) of action indices)."""
  live = ~mdp.terminal
  r = _expected_reward(mdp)

  def backup(v):
    q = r + gamma * jnp.einsum("sat,t->sa", mdp.transitions, v)
    return jnp.where(live, q.max(axis=1), 0.0), q

  def cond(carry):
    i, _, delta = carry
    return (i < max_iters) & (delta > tol)

  def body(carry):
    i, v, _ = carry
    new, _ = backup(v)
    return i + 1, new, jnp.max(jnp.abs(new - v))

  v0 = jnp.zeros(r.shape[0], r.dtype)
  _, v, _ = jax.lax.while_loop(cond, body, (0, v0, jnp.asarray(jnp.inf, r.dtype)))
  return v, jnp.argmax(backup(v)[1], axis=1).astype(jnp.int32)
