"""Rollouts of a vectorised env under a policy, as `lax.scan` over time steps.

`collect`: the training rollout of PPO (T steps of N envs, auto-resetting).
`episode_traces`: one episode per env under any controller, for evaluation:
every step's info and a mask that is 1 up to and including each env's first done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from medjax.treatment.agents import policy
from medjax.treatment.agents.protocol import Env, batch_step

ApplyFn = Callable[[Any, jax.Array], tuple[Any, jax.Array]]  # (params, obs) -> (dist, v)


class Transition(NamedTuple):
  obs: jax.Array  # (T, N, ...)
  raw_action: jax.Array  # (T, N) int32 or (T, N, d) pre-squash
  log_prob: jax.Array  # (T, N)
  value: jax.Array  # (T, N)
  reward: jax.Array  # (T, N), scaled, with bootstrapped truncations
  done: jax.Array  # (T, N) bool


class EpisodeStats(NamedTuple):
  """Running (unscaled, undiscounted) return and length of each env's episode."""
  returns: jax.Array  # (N,)
  lengths: jax.Array  # (N,) int32

  @classmethod
  def zeros(cls, num_envs: int) -> EpisodeStats:
    return cls(jnp.zeros(num_envs), jnp.zeros(num_envs, jnp.int32))


class Rollout(NamedTuple):
  env_state: Any
  obs: jax.Array
  episode: EpisodeStats
  transitions: Transition
  last_value: jax.Array  # (N,) value of the obs after the last step
  finished: dict[str, jax.Array]  # sums over the episodes that ended
  infos: dict[str, jax.Array] | None = None  # (T, N) info[k] for k in `keep_info`


def _finish(episode: EpisodeStats, reward, done):
  returns, lengths = episode.returns + reward, episode.lengths + 1
  ended = done.astype(returns.dtype)
  finished = dict(episodes=ended.sum(), return_sum=(returns * ended).sum(),
                  length_sum=(lengths * ended).sum())
  return EpisodeStats(returns * (1 - ended), jnp.where(done, 0, lengths)), finished


def collect(env: Env, env_params, apply_fn: ApplyFn, space, net_params, env_state,
            obs, episode: EpisodeStats, key, num_steps: int, gamma: float,
            reward_scale: float = 1.0, params_axis=None, keep_info=()) -> Rollout:
  """`num_steps` steps of every env, sampling from the policy; the info entries
  named in `keep_info` come back per step in `Rollout.infos`."""

  def body(carry, key):
    env_state, obs, episode = carry
    k_act, k_env = jax.random.split(key)
    dist, value = apply_fn(net_params, obs)
    raw, logp = policy.sample(space, dist, k_act)
    env_state, next_obs, reward, done, info = batch_step(
        env, env_params, env_state, policy.to_env(space, raw), k_env, params_axis)
    train_reward = reward * reward_scale
    if "truncated" in info and "final_obs" in info:
      final_value = apply_fn(net_params, info["final_obs"])[1]
      train_reward += gamma * final_value * info["truncated"]
    episode, finished = _finish(episode, reward, done)
    step = Transition(obs, raw, logp, value, train_reward, done)
    return (env_state, next_obs, episode), (step, finished, {k: info[k] for k in keep_info})

  keys = jax.random.split(key, num_steps)
  (env_state, obs, episode), (steps, finished, infos) = jax.lax.scan(
      body, (env_state, obs, episode), keys)
  last_value = apply_fn(net_params, obs)[1]
  finished = jax.tree.map(jnp.sum, finished)
  return Rollout(env_state, obs, episode, steps, last_value, finished, infos)


def first_episode_mask(done) -> jax.Array:
  """(T, N) float: 1 for the steps up to and including each env's first done."""
  ended_before = jnp.cumsum(done.astype(jnp.int32), axis=0) - done.astype(jnp.int32)
  return (ended_before == 0).astype(jnp.float32)


def episode_traces(env: Env, env_params, controller: Callable, ctrl_state, env_state,
                   obs, key, num_steps: int, params_axis=None):
  """(infos, rewards, mask), each (T, N, ...), of one episode per env.

  `controller(ctrl_state, obs, key) -> (ctrl_state, env actions)` acts on the
  batch; `env_state, obs` come from `batch_reset`. Steps after an env's first done
  (a new auto-reset episode) are masked out.
  """

  def body(carry, key):
    env_state, obs, ctrl_state = carry
    k_act, k_env = jax.random.split(key)
    ctrl_state, action = controller(ctrl_state, obs, k_act)
    env_state, obs, reward, done, info = batch_step(env, env_params, env_state, action,
                                                    k_env, params_axis)
    return (env_state, obs, ctrl_state), (info, reward, done)

  keys = jax.random.split(key, num_steps)
  _, (infos, rewards, dones) = jax.lax.scan(body, (env_state, obs, ctrl_state), keys)
  return infos, rewards, first_episode_mask(dones)


def policy_controller(apply_fn: ApplyFn, space, net_params, deterministic: bool = True):
  """A stateless controller acting with a PPO network (its mode, or a sample)."""

  def act(ctrl_state, obs, key):
    dist, _ = apply_fn(net_params, obs)
    raw = policy.mode(space, dist) if deterministic else policy.sample(space, dist,
                                                                       key)[0]
    return ctrl_state, policy.to_env(space, raw)

  return act
