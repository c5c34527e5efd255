"""Exact evaluation of policies on the ICU-Sepsis MDP (or any episodic tabular MDP).

ICU-Sepsis (icu-sepsis 2.0.1) pays reward 1 on entering the survival state and 0
otherwise (its metadata: r_survive 1, r_death 0; gamma 1), so a policy's expected
return is its survival rate. Its episodes are cut at 500 steps: `episode_outcomes`
propagates the state distribution for exactly that many steps, so its expected
return is what Monte-Carlo episodes of the package's env average to (the
infinite-horizon linear solve differs by the rare unfinished episodes).

`mdp` is anything with `transitions` (S, A, S), `rewards` (S, A, S), `initial`
(S,) and `terminal` (S,) bool, e.g. `medjax.treatment.envs.sepsis.SepsisMDP`.
The icu-sepsis layout puts death, survival and s_inf last (S - 3, S - 2, S - 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

MAX_STEPS = 500
DEATH_FROM_END, SURVIVAL_FROM_END = 3, 2  # death = S - 3, survival = S - 2


class Outcomes(NamedTuple):
  expected_return: jax.Array  # within the horizon
  survival: jax.Array  # P(reach the survival state within the horizon)
  death: jax.Array
  unfinished: jax.Array  # P(still in a live state after the horizon)
  mean_length: jax.Array  # expected steps taken (capped at the horizon)


def policy_matrices(mdp, policy):
  """(P_pi (S, S), r_pi (S,)): transitions and expected reward under `policy` (S, A)."""
  p_pi = jnp.einsum("sa,sat->st", policy, mdp.transitions)
  r_pi = jnp.einsum("sa,sat,sat->s", policy, mdp.transitions, mdp.rewards)
  return p_pi, r_pi


def episode_outcomes(mdp, policy, horizon: int = MAX_STEPS) -> Outcomes:
  """Exact outcome probabilities of `horizon`-step episodes under `policy` (S, A)."""
  p_pi, r_pi = policy_matrices(mdp, policy)
  live = (~mdp.terminal).astype(p_pi.dtype)
  num_states = p_pi.shape[0]

  def body(carry, _):
    d, ret, length = carry  # d: probability of being in each live state now
    nxt = d @ p_pi
    return (nxt * live, ret + d @ r_pi, length + d.sum()), nxt * (1.0 - live)

  d0 = mdp.initial * live
  zero = jnp.zeros((), p_pi.dtype)
  (d, ret, length), absorbed = jax.lax.scan(body, (d0, zero, zero), None, horizon)
  absorbed = absorbed.sum(0) + mdp.initial * (1.0 - live)
  return Outcomes(ret, absorbed[num_states - SURVIVAL_FROM_END],
                  absorbed[num_states - DEATH_FROM_END], d.sum(), length)


def survival_rate(mdp, policy, horizon: int = MAX_STEPS) -> jax.Array:
  """P(survival within `horizon` steps): ICU-Sepsis's expected return."""
  return episode_outcomes(mdp, policy, horizon).survival


def one_hot_states(num_states: int) -> jax.Array:
  return jnp.eye(num_states, dtype=jnp.float32)


def tabular_policy(apply_fn: Callable[[Any, jax.Array], tuple[Any, jax.Array]], params,
                   num_states: int, greedy: bool = False,
                   obs_fn: Callable[[int], jax.Array] = one_hot_states) -> jax.Array:
  """(S, A) action probabilities of a discrete PPO network at every state.

  `obs_fn(num_states)` gives the observations (S, ...) the network saw for the
  states (one-hot by default); `greedy` makes the policy deterministic (argmax).
  """
  logits, _ = apply_fn(params, obs_fn(num_states))
  if greedy:
    return jax.nn.one_hot(jnp.argmax(logits, -1), logits.shape[-1], dtype=jnp.float32)
  return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)


def uniform_policy(num_states: int, num_actions: int) -> jax.Array:
  return jnp.full((num_states, num_actions), 1.0 / num_actions)


def normalise_rows(policy) -> jax.Array:
  """Rows summing to 1; all-zero rows (the expert's terminal states) made uniform."""
  total = policy.sum(-1, keepdims=True)
  return jnp.where(total > 0, policy / jnp.where(total > 0, total, 1.0),
                   1.0 / policy.shape[-1])
