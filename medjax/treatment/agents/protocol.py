"""The environment interface the agents are written against.

An `Env` is a static (hashable) object with two pure, jit-able methods on ONE
environment (the agents vmap them over the env axis):

    reset(params, key) -> (state, obs)
    step(params, state, action, key) -> (state, obs, reward, done, info)

* `params`: the env's arrays (a patient's parameters, an MDP's tables), either
  shared by all envs (`params_axis=None`) or stacked with a leading env axis
  (`params_axis=0`); any pytree.
* `obs`: a float array of a fixed shape (e.g. (d,) scaled CGM features, or a
  one-hot state). `action`: int32 () for `Discrete`, float (d,) in [low, high]
  for `Box`. `reward`: float (). `done`: bool (), the episode ended at this step.
* Auto-reset: where `done`, the returned state and obs are those of a fresh
  episode (reset with a key derived from `key`); reward and done are the ending
  transition's.
* `info`: a dict of scalar arrays (the same keys every step). Two keys are
  special: `truncated` (bool, the episode was cut by a time limit rather than
  reaching a terminal state) and `final_obs` (the obs before the auto-reset).
  When both are present PPO bootstraps through truncations.

`AutoReset(inner, max_steps)` turns an env whose step does not reset (and has
no time limit) into one satisfying this protocol.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp


class Env(Protocol):

  def reset(self, params: Any, key: jax.Array) -> tuple[Any, jax.Array]:
    ...

  def step(self, params: Any, state: Any, action: jax.Array, key: jax.Array
           ) -> tuple[Any, jax.Array, jax.Array, jax.Array, dict[str, jax.Array]]:
    ...


class TimedState(NamedTuple):
  inner: Any
  t: jax.Array  # int32 steps taken in the current episode


def select(pred, on_true, on_false):
  """Per-leaf jnp.where over two pytrees of one env (pred a scalar)."""
  return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


@dataclasses.dataclass(frozen=True)
class AutoReset:
  """Adds auto-reset, a time limit (`max_steps`, 0 for none) and final_obs/truncated."""
  inner: Any
  max_steps: int = 0

  def reset(self, params, key):
    state, obs = self.inner.reset(params, key)
    return TimedState(state, jnp.zeros((), jnp.int32)), obs

  def step(self, params, state: TimedState, action, key):
    k_step, k_reset = jax.random.split(key)
    inner, obs, reward, terminated, info = self.inner.step(params, state.inner, action,
                                                           k_step)
    t = state.t + 1
    truncated = ~terminated & (t >= self.max_steps) if self.max_steps else (
        jnp.zeros((), bool))
    done = terminated | truncated
    fresh, fresh_obs = self.reset(params, k_reset)
    new = select(done, fresh, TimedState(inner, t))
    info = dict(info, truncated=truncated, final_obs=obs)
    return new, jnp.where(done, fresh_obs, obs), reward, done, info


def batch_reset(env: Env, params, key, num_envs: int, params_axis=None):
  """(states, obs) of `num_envs` envs, each from its own key."""
  keys = jax.random.split(key, num_envs)
  return jax.vmap(env.reset, in_axes=(params_axis, 0))(params, keys)


def batch_step(env: Env, params, states, actions, key, params_axis=None):
  """One step of every env; `actions` has a leading env axis."""
  keys = jax.random.split(key, actions.shape[0])
  return jax.vmap(env.step, in_axes=(params_axis, 0, 0, 0))(params, states, actions,
                                                           keys)
