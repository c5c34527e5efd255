"""PPO (clipped surrogate, GAE, value loss, entropy bonus), all inside `jax.jit`.

    agent = Ppo(env, env_params, ActorCritic(space), space, PpoConfig(...))
    state = agent.init(key)                       # a PpoState pytree
    state, metrics = jax.jit(agent.update)(state, key)

One `update` is a rollout of `num_steps` steps of `num_envs` envs (`lax.scan`),
GAE, then `num_epochs` passes over the T * N transitions in `num_minibatches`
shuffled minibatches (`lax.scan` over epochs and minibatches), each an optax step.
The metrics are means over the minibatch steps, plus the rollout's: `episodes`
(the number that ended), their summed and mean return (NaN when none ended) and
length, `explained_variance` and `mean_reward` (scaled, as trained on).
Every random draw comes from the `key` given; the state holds no key. The env
axis (leading axis of `env_state`, `obs`, `episode`) is the one to shard over a
mesh's data axis; parameters and optimiser state are replicated.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from medjax.engine.errors import InputError
from medjax.treatment.agents import policy
from medjax.treatment.agents.protocol import Env, batch_reset
from medjax.treatment.agents.rollout import EpisodeStats, Transition, collect


@dataclasses.dataclass(frozen=True)
class PpoConfig:
  num_envs: int = 64
  num_steps: int = 128  # rollout length T per update
  num_epochs: int = 4
  num_minibatches: int = 4
  gamma: float = 0.99
  gae_lambda: float = 0.95
  clip_eps: float = 0.2
  vf_coef: float = 0.5
  ent_coef: float = 0.0
  learning_rate: float = 3e-4
  anneal_updates: int = 0  # > 0: learning rate decays linearly to 0 over these updates
  max_grad_norm: float = 0.5
  normalize_advantages: bool = True
  clip_value: bool = False  # clip the value change by clip_eps as well
  reward_scale: float = 1.0

  def __post_init__(self):
    for name in ("num_envs", "num_steps", "num_epochs", "num_minibatches"):
      if getattr(self, name) < 1:
        raise InputError(f"ppo.{name} must be >= 1, got {getattr(self, name)}")
    if (self.num_envs * self.num_steps) % self.num_minibatches:
      raise InputError(f"ppo.num_minibatches ({self.num_minibatches}) must divide "
                       f"num_envs * num_steps ({self.num_envs} * {self.num_steps})")


class PpoState(NamedTuple):
  params: Any
  opt_state: Any
  env_state: Any  # (N, ...)
  obs: jax.Array  # (N, ...) the current observations
  episode: EpisodeStats  # (N,) running returns and lengths
  step: jax.Array  # int32 updates done


def gae(rewards, values, dones, last_value, gamma: float, lam: float):
  """(advantages, returns), (T, ...) each; dones[t] stops bootstrapping after step t."""

  def body(carry, x):
    adv_next, value_next = carry
    reward, value, done = x
    live = 1.0 - done.astype(value.dtype)
    delta = reward + gamma * value_next * live - value
    adv = delta + gamma * lam * live * adv_next
    return (adv, value), adv

  init = (jnp.zeros_like(last_value), last_value)
  _, adv = jax.lax.scan(body, init, (rewards, values, dones), reverse=True)
  return adv, adv + values


def clipped_surrogate(log_prob, old_log_prob, advantages, clip_eps: float):
  """(loss, clip fraction): -mean(min(r A, clip(r, 1 +- eps) A)), r = pi / pi_old."""
  ratio = jnp.exp(log_prob - old_log_prob)
  clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
  loss = -jnp.mean(jnp.minimum(ratio * advantages, clipped * advantages))
  return loss, jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32))


def value_loss(value, old_value, returns, clip_eps: float, clip: bool):
  """0.5 * mean squared error to the returns (PPO2's clipped form when `clip`)."""
  loss = (value - returns)**2
  if clip:
    clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
    loss = jnp.maximum(loss, (clipped - returns)**2)
  return 0.5 * jnp.mean(loss)


class Batch(NamedTuple):
  transitions: Transition  # flattened to (B, ...)
  advantages: jax.Array
  returns: jax.Array


def ppo_loss(params, apply_fn, space, batch: Batch, config: PpoConfig):
  """(total loss, metrics) on one minibatch."""
  tr = batch.transitions
  dist, value = apply_fn(params, tr.obs)
  log_prob = policy.log_prob(space, dist, tr.raw_action)
  adv = batch.advantages
  if config.normalize_advantages:
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
  pg_loss, clip_frac = clipped_surrogate(log_prob, tr.log_prob, adv, config.clip_eps)
  v_loss = value_loss(value, tr.value, batch.returns, config.clip_eps, config.clip_value)
  ent = jnp.mean(policy.entropy(space, dist))
  loss = pg_loss + config.vf_coef * v_loss - config.ent_coef * ent
  log_ratio = log_prob - tr.log_prob
  approx_kl = jnp.mean(jnp.exp(log_ratio) - 1.0 - log_ratio)
  return loss, dict(loss=loss, policy_loss=pg_loss, value_loss=v_loss, entropy=ent,
                    approx_kl=approx_kl, clip_frac=clip_frac)


def make_optimizer(config: PpoConfig) -> optax.GradientTransformation:
  lr = config.learning_rate
  if config.anneal_updates:
    steps = config.anneal_updates * config.num_epochs * config.num_minibatches
    lr = optax.linear_schedule(lr, 0.0, steps)
  return optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                     optax.adam(lr, eps=1e-5))


@dataclasses.dataclass(frozen=True, eq=False)
class Ppo:
  """PPO on `env` with per-env (`params_axis=0`) or shared (None) `env_params`."""
  env: Env
  env_params: Any
  network: nn.Module
  space: policy.ActionSpace
  config: PpoConfig
  params_axis: int | None = None

  @property
  def optimizer(self) -> optax.GradientTransformation:
    return make_optimizer(self.config)

  def apply(self, params, obs):
    return self.network.apply(params, obs)

  def init(self, key) -> PpoState:
    k_net, k_env = jax.random.split(key)
    env_state, obs = batch_reset(self.env, self.env_params, k_env, self.config.num_envs,
                                 self.params_axis)
    params = self.network.init(k_net, obs)
    return PpoState(params, self.optimizer.init(params), env_state, obs,
                    EpisodeStats.zeros(self.config.num_envs), jnp.zeros((), jnp.int32))

  def update(self, state: PpoState, key) -> tuple[PpoState, dict[str, jax.Array]]:
    """One rollout and `num_epochs` of minibatch updates; returns mean metrics."""
    c = self.config
    k_roll, k_epochs = jax.random.split(key)
    ro = collect(self.env, self.env_params, self.apply, self.space, state.params,
                 state.env_state, state.obs, state.episode, k_roll, c.num_steps,
                 c.gamma, c.reward_scale, self.params_axis)
    (params, opt_state), metrics = optimise(state.params, state.opt_state, ro, k_epochs,
                                            self.apply, self.space, c, self.optimizer)
    new = PpoState(params, opt_state, ro.env_state, ro.obs, ro.episode, state.step + 1)
    return new, metrics


def _value_and_grad(loss_fn, params, batch):
  return jax.value_and_grad(loss_fn, has_aux=True)(params, batch)


def optimise(params, opt_state, ro, key, apply_fn, space, config: PpoConfig,
             tx: optax.GradientTransformation, value_and_grad=_value_and_grad):
  """PPO's learning phase on rollout `ro`: GAE, then `num_epochs` passes of shuffled
  minibatch updates with `tx`. `value_and_grad` is the gradient rule (the engine's,
  in a Task). Returns ((params, opt_state), mean metrics incl. the rollout's)."""
  c = config
  tr = ro.transitions
  adv, returns = gae(tr.reward, tr.value, tr.done, ro.last_value, c.gamma, c.gae_lambda)
  data = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), Batch(tr, adv, returns))
  loss_fn = lambda p, mb: ppo_loss(p, apply_fn, space, mb, c)  # noqa: E731

  def minibatch(carry, mb):
    params, opt_state = carry
    (_, metrics), grads = value_and_grad(loss_fn, params, mb)
    updates, opt_state = tx.update(grads, opt_state, params)
    metrics = {**metrics, "grad_norm": optax.tree.norm(grads)}
    return (optax.apply_updates(params, updates), opt_state), metrics

  def epoch(carry, k):
    perm = jax.random.permutation(k, c.num_envs * c.num_steps)
    shuffle = lambda x: x[perm].reshape((c.num_minibatches, -1) + x.shape[1:])  # noqa: E731
    return jax.lax.scan(minibatch, carry, jax.tree.map(shuffle, data))

  carry, metrics = jax.lax.scan(epoch, (params, opt_state),
                                jax.random.split(key, c.num_epochs))
  metrics = jax.tree.map(jnp.mean, metrics)
  metrics.update(_rollout_metrics(ro.finished, tr, returns))
  return carry, metrics


def _rollout_metrics(finished, tr: Transition, returns):
  count = finished["episodes"]
  safe = jnp.maximum(count, 1.0)
  residual = jnp.var(returns - tr.value)
  return dict(episodes=count, episode_return_sum=finished["return_sum"],
              episode_return=jnp.where(count > 0, finished["return_sum"] / safe, jnp.nan),
              episode_length=jnp.where(count > 0, finished["length_sum"] / safe, jnp.nan),
              explained_variance=1.0 - residual / (jnp.var(returns) + 1e-8),
              mean_reward=jnp.mean(tr.reward))
