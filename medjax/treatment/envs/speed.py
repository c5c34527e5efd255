"""Environment steps per second: the JAX simulators batched, and the reference packages.

`jax_t1d` and `jax_sepsis` time `steps` steps of B parallel environments
(jit + vmap + lax.scan, after one compiling call); `simglucose_t1d` and
`icu_sepsis_reference` step the reference packages' own environments one at a
time in this process. Each returns steps per second.
"""

from __future__ import annotations

import time
from datetime import datetime

import jax
import jax.numpy as jnp
import numpy as np

from medjax.treatment.envs import params, scenario, sepsis, t1d, t1d_model

BATCHES = (1, 64, 1024, 8192)


def _timed(fn, *args, repeats: int = 3) -> float:
  """Best wall time of `repeats` calls after a compiling one (the least disturbed)."""
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - start)
  return best


def jax_t1d(batch: int, steps: int = 480, substeps: int = 2, folder=None) -> float:
  """B patients (the 30 cycled) on random meal days, CGM noise on, basal insulin."""
  names = params.patient_names(folder)
  p = params.load_patients([names[i % len(names)] for i in range(batch)], folder)
  env = t1d.T1DEnv(params.load_pump(folder=folder), params.load_sensor(folder=folder),
                   substeps=substeps)

  def episode(p, key):
    k_meal, k_reset, k_run = jax.random.split(key, 3)
    state, _ = env.reset(p, scenario.random(k_meal, days=2), k_reset)
    action = jnp.stack([t1d_model.basal_rate(p), 0.0])

    def body(state, k):
      state, obs, *_ = env.step(p, state, action, k)
      return state, obs
    return jax.lax.scan(body, state, jax.random.split(k_run, steps))[1]

  run = jax.jit(jax.vmap(episode))
  keys = jax.random.split(jax.random.key(0), batch)
  return batch * steps / _timed(run, p, keys)


def jax_sepsis(batch: int, steps: int = 1000, path=None) -> float:
  """B episodes under uniformly random actions, restarted when they end."""
  mdp = sepsis.load(path)

  def rollout(mdp, key):  # the tables as an argument: as constants they compile slowly
    k0, k_run = jax.random.split(key)

    def body(state, k):
      ka, ks, kr = jax.random.split(k, 3)
      action = jax.random.randint(ka, (), 0, mdp.expert.shape[1])
      state, reward, term, trunc = sepsis.step(mdp, state, action, ks)
      return sepsis.auto_reset(mdp, state, term | trunc, kr), reward
    return jax.lax.scan(body, sepsis.reset(mdp, k0), jax.random.split(k_run, steps))[1]

  run = jax.jit(jax.vmap(rollout, in_axes=(None, 0)))
  return batch * steps / _timed(run, mdp, jax.random.split(jax.random.key(0), batch))


def simglucose_t1d(seconds: float = 5.0) -> float:
  """simglucose's T1DSimEnv as shipped (Dexcom, Insulet, random meals), basal insulin."""
  from simglucose.actuator.pump import InsulinPump  # pylint: disable=g-import-not-at-top
  from simglucose.controller.base import Action
  from simglucose.patient.t1dpatient import T1DPatient
  from simglucose.sensor.cgm import CGMSensor
  from simglucose.simulation.env import T1DSimEnv
  from simglucose.simulation.scenario_gen import RandomScenario
  patient = T1DPatient.withName("adult#001")
  env = T1DSimEnv(patient, CGMSensor.withName("Dexcom", seed=1),
                  InsulinPump.withName("Insulet"),
                  RandomScenario(datetime(2018, 1, 1), seed=1))
  env.reset()
  row = patient._params  # pylint: disable=protected-access
  action = Action(basal=row.u2ss * row.BW / 6000, bolus=0)
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    env.step(action)
    count += 1
  return count / (time.perf_counter() - start)


def icu_sepsis_reference(seconds: float = 2.0) -> float:
  """icu-sepsis's gymnasium environment under random actions."""
  import gymnasium  # pylint: disable=g-import-not-at-top
  import icu_sepsis  # noqa: F401  pylint: disable=unused-import  (registers the env)
  env = gymnasium.make("Sepsis/ICU-Sepsis-v2")
  rng = np.random.default_rng(0)
  env.reset(seed=0)
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    _, _, term, trunc, _ = env.step(int(rng.integers(25)))
    count += 1
    if term or trunc:
      env.reset()
  return count / (time.perf_counter() - start)


def table(batches=BATCHES, t1d_steps: int = 480, sepsis_steps: int = 1000) -> dict:
  """{'t1d': {B: steps/s}, 'sepsis': {...}, 'simglucose': x, 'icu_sepsis': y}."""
  out = {"t1d": {b: jax_t1d(b, t1d_steps) for b in batches},
         "sepsis": {b: jax_sepsis(b, sepsis_steps) for b in batches}}
  out["simglucose"] = simglucose_t1d()
  out["icu_sepsis"] = icu_sepsis_reference()
  return out
