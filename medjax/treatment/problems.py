"""What the treatment task trains on, built from `config.task`: env, params, action space.

`t1d`: `Dosing(T1DTask)` envs under `AutoReset` (episodes of `days` days), env i
simulating training patient i % P; `sepsis`: the ICU-Sepsis MDP with one-hot
observations. Patient lists are comma-separated names or ranges such as
"adult#001-007"; unknown names raise InputError listing the valid ones.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import jax
import numpy as np

from medjax.engine.errors import InputError
from medjax.treatment.agents import adapters
from medjax.treatment.agents.policy import ActionSpace, Box, Discrete
from medjax.treatment.agents.protocol import AutoReset
from medjax.treatment.envs import params as params_lib
from medjax.treatment.envs import sepsis, t1d

ENVS = ("t1d", "sepsis")
ACTIONS = ("scaled", "absolute")
_RANGE = re.compile(r"(\w+)#(\d+)-(\d+)")


class Problem(NamedTuple):
  kind: str  # t1d | sepsis
  env: Any  # satisfies agents.protocol.Env (auto-resetting)
  params: Any  # per-env (params_axis 0) or shared (None) env parameters
  params_axis: int | None
  space: ActionSpace
  obs_dim: int  # 0: the observation is an int state index (sepsis)
  env_names: tuple[str, ...]  # the patient each env simulates ("" for sepsis)


def expand_names(spec: str, field: str) -> tuple[str, ...]:
  """'adult#001-003,child#010' -> ('adult#001', 'adult#002', 'adult#003', 'child#010')."""
  names = []
  for token in (t.strip() for t in spec.split(",") if t.strip()):
    m = _RANGE.fullmatch(token)
    if m is None:
      names.append(token)
      continue
    first, last = int(m.group(2)), int(m.group(3))
    if last < first:
      raise InputError(f"config.task.{field}: empty range {token!r}")
    names += [f"{m.group(1)}#{i:0{len(m.group(2))}d}" for i in range(first, last + 1)]
  if not names:
    raise InputError(f"config.task.{field} names no patient")
  return tuple(names)


def _folder(c):
  return c.params_dir or None


def load_cohort(c, spec: str, field: str):
  """(names, PatientParams, QuestParams) of the patients `spec` names."""
  names = expand_names(spec, field)
  try:
    return (names, params_lib.load_patients(names, _folder(c)),
            params_lib.load_quest(names, _folder(c)))
  except InputError as e:
    raise InputError(f"config.task.{field}: {e}") from e


def t1d_env(c) -> t1d.T1DEnv:
  return t1d.T1DEnv(params_lib.load_pump(c.pump, _folder(c)),
                    params_lib.load_sensor(c.sensor, _folder(c)), noise=c.cgm_noise,
                    substeps=c.substeps)


def dosing(c, env: t1d.T1DEnv | None = None) -> adapters.Dosing:
  if c.action not in ACTIONS:
    raise InputError(f"config.task.action: unknown {c.action!r} ({' | '.join(ACTIONS)})")
  task = adapters.T1DTask(env or t1d_env(c), days=c.days, bolus=True, reward=c.reward,
                          termination_penalty=c.termination_penalty)
  return adapters.Dosing(task, scaled=c.action == "scaled")


def t1d_space(c) -> Box:
  if c.action == "scaled":
    return Box((0.0, 0.0), (c.max_basal_multiple, c.max_bolus_multiple), c.squash)
  return Box((0.0,), (c.max_basal_rate,), c.squash)


def episode_steps(c, env: t1d.T1DEnv) -> int:
  if c.episode_steps < 0:
    raise InputError(f"config.task.episode_steps={c.episode_steps} must be >= 0")
  return c.episode_steps or c.days * 1440 // env.sensor.sample_time


def build(c, num_envs: int) -> Problem:
  """The problem `config.task` describes, with `num_envs` parallel envs."""
  if c.env not in ENVS:
    raise InputError(f"config.task.env: unknown {c.env!r} ({' | '.join(ENVS)})")
  if c.env == "sepsis":
    mdp = sepsis.load(c.sepsis_path or None)
    num_states, num_actions = mdp.expert.shape
    return Problem("sepsis", adapters.SepsisEnv(num_states, one_hot=False), mdp, None,
                   Discrete(num_actions), 0, ("",) * num_envs)
  names, patients, quest = load_cohort(c, c.train_patients, "train_patients")
  idx = np.arange(num_envs) % len(names)
  per_env = jax.tree.map(lambda x: np.asarray(x)[idx], (patients, quest))
  env = t1d_env(c)
  wrapped = AutoReset(dosing(c, env), episode_steps(c, env))
  obs_dim = 5
  return Problem("t1d", wrapped, per_env, 0, t1d_space(c), obs_dim,
                 tuple(names[i] for i in idx))
