"""Closed-loop T1D controllers for evaluation: the learned policy, basal-bolus, PID.

A controller has `init(num_envs)` and `act(ctrl_state, obs, env_state) ->
(ctrl_state, pump action (E, 2) [basal, bolus] U/min)`, on a batch of
`adapters.T1DTaskState`s whose rows are the cohort's episodes (`params`: the
per-episode (PatientParams, QuestParams)). The policy acts through the engine's
`predict_fn`, deterministically (the Gaussian's mean, squashed).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from medjax.treatment.agents import adapters, pid, policy
from medjax.treatment.envs import controllers, t1d_model

# PID gains relative to the patient's basal rate b: rate = b (1 + kp e + ki I + kd de/dt)
# with e = CGM - 140 mg/dL; tuned on the training patients over this grid.
PID_GRID = dict(kp=(0.005, 0.01, 0.02, 0.04), ki=(0.0, 2.5e-5, 1e-4), kd=(0.0, 0.5))


@dataclasses.dataclass(frozen=True, eq=False)
class BasalBolus:
  """simglucose's BBController: basal u2ss * BW / 6000, meal bolus by CR, CF."""
  params: Any
  sample_time: int

  def init(self, num_envs):
    del num_envs
    return ()

  def act(self, ctrl_state, obs, env_state: adapters.T1DTaskState):
    del obs
    return ctrl_state, _bb(self.params, env_state.prev_cgm, env_state.meal, self.sample_time)


@functools.partial(jax.jit, static_argnums=4)
def _bb_rows(p, quest, cgm, meal, sample_time):
  return jax.vmap(controllers.basal_bolus, in_axes=(0, 0, 0, 0, None))(
      p, quest, cgm, meal, sample_time)


def _bb(params, cgm, meal, sample_time):
  return _bb_rows(params[0], params[1], cgm, meal, sample_time)


@dataclasses.dataclass(frozen=True, eq=False)
class Pid:
  """`pid.step` with gains `relative` (kp, ki, kd) times each patient's basal rate;
  each gain a float or one per episode (E,). The integral is clamped where its
  term would exceed twice the basal rate (anti-windup)."""
  params: Any
  relative: tuple[Any, Any, Any]
  sample_time: int

  def gains(self) -> pid.PidParams:
    basal = t1d_model.basal_rate(self.params[0])
    kp, ki, kd = (jnp.asarray(g, jnp.float32) for g in self.relative)
    limit = jnp.where(ki > 0, 2.0 / jnp.where(ki > 0, ki, 1.0), 0.0)
    return pid.PidParams(kp * basal, ki * basal, kd * basal, 140.0, basal,
                         jnp.broadcast_to(limit, basal.shape))

  def init(self, num_envs):
    return pid.init((num_envs,))

  def act(self, ctrl_state, obs, env_state: adapters.T1DTaskState):
    del obs
    return _pid_act(self.gains(), ctrl_state, env_state.prev_cgm, float(self.sample_time))


@jax.jit
def _pid_act(gains, ctrl_state, cgm, dt):
  ctrl_state, rate = pid.step(gains, ctrl_state, cgm, dt)
  return ctrl_state, pid.pump_action(rate)


@dataclasses.dataclass(frozen=True, eq=False)
class Learned:
  """The trained network (through `predict_fn`), its mean action, via `dosing`."""
  predict_fn: Any
  space: policy.ActionSpace
  dosing: adapters.Dosing
  params: Any

  def init(self, num_envs):
    del num_envs
    return ()

  def act(self, ctrl_state, obs, env_state):
    dist, _ = self.predict_fn({"obs": np.nan_to_num(np.asarray(obs))})
    return ctrl_state, _to_pump(self.dosing, self.space, self.params, env_state,
                                jax.tree.map(jnp.asarray, dist))


@functools.partial(jax.jit, static_argnums=(0, 1))
def _to_pump(dosing, space, params, env_state, dist):
  action = policy.to_env(space, policy.mode(space, dist))
  return jax.vmap(dosing.pump_action)(params, env_state, action)


def pid_candidates(grid=None):
  grid = grid or PID_GRID
  return list(itertools.product(grid["kp"], grid["ki"], grid["kd"]))
