"""Personalised treatment by reinforcement learning, as a task of the shared engine.

One engine step is one PPO update: a `lax.scan` rollout of `task.num_steps`
steps of `config.batch_size` parallel envs (their states live in
`TrainState.extra["batched"]`, split over the mesh's batch axes and checkpointed),
GAE, then `num_epochs` x `num_minibatches` optimiser steps with the engine's
optimiser (`ctx.tx`) and gradient rule (`ctx.value_and_grad`). So checkpoints,
exact resume, SIGTERM, writers and the NaN stop are the engine's. The training
"dataset" is a counter: the envs make their own data.

A T1D state that stops being finite makes `metrics["loss"]` NaN (the engine stops,
keeping the last good checkpoint) and records which patient and env step went
bad in `task.nonfinite` (logged; experiments/treatment.py adds it to the error).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from medjax.engine import optim
from medjax.engine.task import Task
from medjax.treatment import evaluate, problems, report
from medjax.treatment.agents import ppo, rollout
from medjax.treatment.agents.networks import ActorCritic
from medjax.treatment.agents.protocol import batch_reset

_T1D_INFO = ("finite", "clipped", "bg")


class Ticks:
  """The endless 'dataset' of an RL task: a dummy batch per step, and a counter
  checkpointed with the run (so resuming restores it like a real data position)."""

  def __init__(self, batch_size: int):
    self.batch = {"tick": np.zeros((batch_size,), np.int32)}
    self.count = 0

  def __iter__(self):
    return self

  def __next__(self):
    self.count += 1
    return self.batch

  def get_state(self) -> dict[str, int]:
    return {"count": self.count}

  def set_state(self, state) -> None:
    self.count = int(state["count"])


class _TicksDataset:
  def __init__(self, batch_size: int):
    self.batch_size = batch_size

  def __iter__(self):
    return Ticks(self.batch_size)


def ppo_config(c, num_envs: int) -> ppo.PpoConfig:
  return ppo.PpoConfig(num_envs=num_envs, num_steps=c.num_steps, num_epochs=c.num_epochs,
                       num_minibatches=c.num_minibatches, gamma=c.gamma,
                       gae_lambda=c.gae_lambda, clip_eps=c.clip_eps, vf_coef=c.vf_coef,
                       ent_coef=c.ent_coef, normalize_advantages=c.normalize_advantages,
                       clip_value=c.clip_value, reward_scale=c.reward_scale)


class TreatmentTask(Task):
  """PPO on the T1D simulator or the ICU-Sepsis MDP (`config.task.env`)."""

  def __init__(self, task_config, batch_size: int):
    self.config = task_config
    self.problem = problems.build(task_config, batch_size)
    self.ppo = ppo_config(task_config, batch_size)
    num_states = self.problem.params.expert.shape[0] if self.problem.kind == "sepsis" else 0
    self.model = ActorCritic(self.problem.space, tuple(task_config.hidden),
                             task_config.activation, task_config.log_std_init, num_states)
    self.keep_info = _T1D_INFO if self.problem.kind == "t1d" else ()
    self.nonfinite: str | None = None
    self._evaluators = evaluate.make_evaluators(task_config, self)

  # -- the supervised parts of the contract, trivial here --

  def model_inputs(self, batch):
    return {"obs": batch["obs"]}

  def loss(self, outputs, batch):
    raise NotImplementedError("the RL loss is computed inside TreatmentTask.update")

  def train_dataset(self, batch_size, seed, shard_index=0, shard_count=1):
    del seed, shard_index, shard_count
    return _TicksDataset(batch_size)

  def example_batch(self, batch_size):
    if not self.problem.obs_dim:  # state indices
      return {"obs": np.zeros((batch_size,), np.int32)}
    return {"obs": np.zeros((batch_size, self.problem.obs_dim), np.float32)}

  def evaluators(self):
    return self._evaluators

  def report(self, predict_fn, workdir):
    return report.write(self, predict_fn, workdir)

  # -- the RL update --

  def optimizer(self, optimizer_config, total_steps):
    """The engine's optimiser over every minibatch step; the schedule by update."""
    per_update = self.ppo.num_epochs * self.ppo.num_minibatches
    tx, schedule = optim.make_optimizer(optimizer_config, total_steps * per_update)
    return tx, lambda step: schedule(step * per_update)

  def init_extra(self, rng, params):
    del params
    p = self.problem
    env_state, obs = batch_reset(p.env, p.params, rng, self.ppo.num_envs, p.params_axis)
    n = self.ppo.num_envs
    return {"batched": {"env_state": env_state, "obs": obs,
                        "returns": jnp.zeros(n), "lengths": jnp.zeros(n, jnp.int32)}}

  def apply_fn(self, ctx):
    return lambda params, obs: ctx.apply({"params": params}, {"obs": obs})

  def update(self, state, batch, key, ctx):
    del batch
    c, p = self.ppo, self.problem
    apply_fn = self.apply_fn(ctx)
    extra = state.extra["batched"]
    k_roll, k_epochs = jax.random.split(key)
    ro = rollout.collect(p.env, p.params, apply_fn, p.space, state.params,
                         extra["env_state"], extra["obs"],
                         rollout.EpisodeStats(extra["returns"], extra["lengths"]), k_roll,
                         c.num_steps, c.gamma, c.reward_scale, p.params_axis,
                         self.keep_info)
    (params, opt_state), metrics = ppo.optimise(
        state.params, state.opt_state, ro, k_epochs, apply_fn, p.space, c, ctx.tx,
        ctx.value_and_grad)
    metrics["learning_rate"] = ctx.schedule(state.step)
    if ro.infos:
      metrics.update(self._t1d_metrics(ro.infos, state.step))
      metrics["loss"] = metrics["loss"] + metrics.pop("nonfinite_guard")
    new_extra = {"batched": {"env_state": ro.env_state, "obs": ro.obs,
                             "returns": ro.episode.returns, "lengths": ro.episode.lengths}}
    return state.replace(params=params, opt_state=opt_state, extra=new_extra), metrics

  def _t1d_metrics(self, infos, step) -> dict[str, Any]:
    """Pump clipping and time in range of the rollout; a NaN loss on a bad state."""
    bad = ~infos["finite"]  # (T, N)
    first_t = jnp.argmax(bad.any(1))
    first_env = jnp.argmax(bad[first_t])
    jax.debug.callback(self._note_nonfinite, bad.any(), step, first_t, first_env)
    bg = infos["bg"]
    tir = jnp.mean(((bg >= 70) & (bg <= 180)).astype(jnp.float32))
    return {"pump_clipped": jnp.mean(infos["clipped"].astype(jnp.float32)),
            "rollout_time_in_range": tir,
            "nonfinite_envs": bad.any(0).sum(),
            "nonfinite_guard": jnp.where(bad.any(), jnp.nan, 0.0)}

  def _note_nonfinite(self, any_bad, step, first_t, first_env):
    if not bool(any_bad):
      return
    env = int(first_env)
    env_step = int(step) * self.ppo.num_steps + int(first_t) + 1
    self.nonfinite = (f"the glucose-insulin state of patient "
                      f"{self.problem.env_names[env]} (env {env}) became NaN/inf at "
                      f"env step {env_step} (rollout of update {int(step) + 1})")
    logging.error("%s", self.nonfinite)
