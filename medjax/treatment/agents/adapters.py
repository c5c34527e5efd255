"""Adapters from the simulators in `medjax.treatment.envs` to the agents' `Env` protocol.

`SepsisEnv`: ICU-Sepsis with one-hot observations; auto-resets itself.
`T1DTask`: one patient per env on random meal days; wrap it in
`protocol.AutoReset(T1DTask(...), max_steps)` for the time limit and auto-reset.
`Dosing`: a T1DTask whose actions are multiples of the patient's own doses.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from medjax.engine.errors import InputError
from medjax.treatment.envs import scenario, sepsis, t1d, t1d_model
from medjax.treatment.envs.params import PatientParams


@dataclasses.dataclass(frozen=True)
class SepsisEnv:
  """`params` is a `sepsis.SepsisMDP`; actions are int32 in [0, 25). Observations:
  the one-hot state, or (`one_hot=False`) the int32 state index itself."""
  num_states: int = 716
  one_hot: bool = True

  def _obs(self, state: sepsis.SepsisState):
    if not self.one_hot:
      return state.s
    return jax.nn.one_hot(state.s, self.num_states)

  def reset(self, mdp: sepsis.SepsisMDP, key):
    state = sepsis.reset(mdp, key)
    return state, self._obs(state)

  def step(self, mdp: sepsis.SepsisMDP, state: sepsis.SepsisState, action, key):
    k_step, k_reset = jax.random.split(key)
    nxt, reward, terminated, truncated = sepsis.step(mdp, state, action, k_step)
    done = terminated | truncated
    fresh = sepsis.auto_reset(mdp, nxt, done, k_reset)
    info = dict(truncated=truncated, final_obs=self._obs(nxt))
    return fresh, self._obs(fresh), reward, done, info


REWARDS = ("risk_diff", "risk")


class T1DTaskState(NamedTuple):
  env: t1d.T1DState
  prev_cgm: jax.Array
  meal: jax.Array  # g/min eaten during the previous step


@dataclasses.dataclass(frozen=True)
class T1DTask:
  """A T1D env for an agent; `params` is one patient's `PatientParams` row.

  Actions: (1,) basal U/min (bolus 0), or (2,) [basal, bolus] when `bolus`.
  Observations (5,): CGM / 100, its change over the step / 10, the previous
  step's carbohydrate (g/min) / 10 and the time of day as (sin, cos). Reward:
  `env`'s (the drop in Kovatchev risk), or minus the step's risk when
  `reward="risk"`; minus `termination_penalty` more on the step that ends the
  episode (BG out of the simulator's range), which otherwise a policy paying
  per-step risk could learn to seek. Episodes end (without a reset) where `env`
  ends them.
  """
  env: t1d.T1DEnv
  days: int = 1
  bolus: bool = False
  reward: str = "risk_diff"
  termination_penalty: float = 0.0

  def __post_init__(self):
    if self.reward not in REWARDS:
      raise InputError(f"unknown T1D reward {self.reward!r} ({' | '.join(REWARDS)})")

  def _obs(self, cgm, prev, meal, minutes):
    phase = 2.0 * math.pi * minutes / 1440.0
    return jnp.stack([cgm / 100.0, (cgm - prev) / 10.0, meal / 10.0, jnp.sin(phase),
                      jnp.cos(phase)]).astype(jnp.float32)

  def reset(self, p: PatientParams, key):
    k_meals, k_env = jax.random.split(key)
    state, cgm = self.env.reset(p, scenario.random(k_meals, self.days), k_env)
    zero = jnp.zeros((), cgm.dtype)
    return T1DTaskState(state, cgm, zero), self._obs(cgm, cgm, zero, state.t)

  def step(self, p: PatientParams, state: T1DTaskState, action, key):
    pump = action if self.bolus else jnp.stack([action[0], jnp.zeros_like(action[0])])
    env_state, cgm, reward, done, info = self.env.step(p, state.env, pump, key)
    if self.reward == "risk":
      reward = -info["risk"]
    reward = reward - self.termination_penalty * done.astype(reward.dtype)
    obs = self._obs(cgm, state.prev_cgm, info["meal"], env_state.t)
    return T1DTaskState(env_state, cgm, info["meal"]), obs, reward, done, info


@dataclasses.dataclass(frozen=True)
class Dosing:
  """A `T1DTask(bolus=True)` whose actions are doses of a patient; `params` is
  (PatientParams row, QuestParams row).

  `scaled=True`: the action is [m_basal, m_bolus], multiples of the patient's own
  doses: basal = m_basal * u2ss * BW / 6000 and bolus = m_bolus * the carbohydrate
  eaten in the previous step / CR (U/min), so [1, 1] is simglucose's basal-bolus
  controller without its correction bolus, and one policy fits adults and children.
  `scaled=False`: the action is (1,) an absolute basal rate in U/min, no bolus.
  """
  task: T1DTask
  scaled: bool = True

  def __post_init__(self):
    if not self.task.bolus:
      raise ValueError("Dosing needs a T1DTask with bolus=True")

  def pump_action(self, params, state: T1DTaskState, action):
    """[basal, bolus] in U/min for the pump."""
    if not self.scaled:
      return jnp.stack([action[0], jnp.zeros_like(action[0])])
    p, quest = params
    return jnp.stack([action[0] * t1d_model.basal_rate(p), action[1] * state.meal / quest.CR])

  def reset(self, params, key):
    return self.task.reset(params[0], key)

  def step(self, params, state: T1DTaskState, action, key):
    return self.task.step(params[0], state, self.pump_action(params, state, action), key)
