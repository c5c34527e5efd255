"""simglucose's T1DSimEnv as pure JAX functions: patient, pump, CGM, meals.

    env = T1DEnv(pump=load_pump(), sensor=load_sensor())
    state, obs = env.reset(patient, scenario, key)
    state, obs, reward, done, info = env.step(patient, state, action, key)

`patient` is one row of `params.load_patients` (vmap over the stacked rows),
`action` is (2,) [basal, bolus] in U/min. One step lasts the sensor's sample
time (3 min for Dexcom), made of 1-min patient steps with the action held; the
pump rounds each rate to its increment and clips it to its range (clipped
components are counted in the state); `obs` is the step's mean CGM and
`info["bg"]` its mean blood glucose, as simglucose reports them. The episode
ends when that mean BG leaves [bg_low, bg_high] (simglucose 0.2.11: 10, 600).
The reward is simglucose's default risk_diff: the drop in Kovatchev risk from
the previous CGM reading to this one.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from medjax.treatment.envs import cgm, t1d_model
from medjax.treatment.envs.params import PatientParams, PumpParams, SensorParams
from medjax.treatment.envs.scenario import Scenario, meal_at


class T1DState(NamedTuple):
  patient: t1d_model.PatientState
  noise: cgm.NoiseState
  scenario: Scenario
  t: jax.Array  # int32 minutes since the start
  last_cgm: jax.Array  # the sensor's held reading
  prev_obs: jax.Array  # the previous step's CGM observation (for the reward)
  clipped: jax.Array  # int32 pump rates clipped so far (basal and bolus counted apart)
  nan_step: jax.Array  # int32 first step whose state was not finite; -1 if none
  steps: jax.Array  # int32 steps taken


def risk(bg):
  """Kovatchev (LBGI, HBGI, risk) of one reading, as simglucose's risk_index."""
  f = 1.509 * (jnp.log(bg) ** 1.084 - 5.381)
  r = 10.0 * f**2
  lbgi, hbgi = jnp.where(f < 0, r, 0.0), jnp.where(f > 0, r, 0.0)
  return lbgi, hbgi, lbgi + hbgi


def pump_rate(rate, low, high, increment):
  """simglucose's InsulinPump.basal / bolus: round in pmol/min, then clip."""
  pmol = jnp.round(rate * t1d_model.U_TO_PMOL / increment) * increment
  rounded = pmol / t1d_model.U_TO_PMOL
  return jnp.clip(rounded, low, high), (rounded < low) | (rounded > high)


@dataclasses.dataclass(frozen=True)
class T1DEnv:
  """Static settings: pump, sensor, noise on/off, RK4 substeps per minute, BG limits."""
  pump: PumpParams
  sensor: SensorParams
  noise: bool = True
  # RK4 steps per minute; vs simglucose over 24 h, 1 is up to 0.18 mg/dL off, 2 is 0.006.
  substeps: int = 2
  bg_low: float = 10.0
  bg_high: float = 600.0

  def _measure(self, bg, noise: cgm.NoiseState, key):
    if not self.noise:
      return jnp.clip(bg, self.sensor.min, self.sensor.max), noise
    n, noise = cgm.next_noise(noise, jax.random.normal(key), self.sensor)
    return jnp.clip(bg + n, self.sensor.min, self.sensor.max), noise

  def reset(self, p: PatientParams, scenario: Scenario, key, x0=None):
    """(state, first CGM observation); `x0` overrides the patient's initial state."""
    k_init, k1, k2 = jax.random.split(key, 3)
    patient = t1d_model.initial_patient(p, x0)
    noise = cgm.random_noise(k_init, self.sensor)
    bg = t1d_model.blood_glucose(p, patient)
    # simglucose's reset measures twice at t = 0 (once to start its history).
    _, noise = self._measure(bg, noise, k1)
    obs, noise = self._measure(bg, noise, k2)
    i0 = jnp.zeros((), jnp.int32)
    state = T1DState(patient, noise, scenario, i0, obs, obs, i0, i0 - 1, i0)
    return state, obs

  def _pump(self, action):
    pump = self.pump
    basal, clip_basal = pump_rate(action[0], pump.min_basal, pump.max_basal,
                                  pump.inc_basal)
    bolus, clip_bolus = pump_rate(action[1], pump.min_bolus, pump.max_bolus,
                                  pump.inc_bolus)
    return basal + bolus, clip_basal.astype(jnp.int32) + clip_bolus.astype(jnp.int32)

  def step(self, p: PatientParams, state: T1DState, action, key):
    """One sample time with `action` = [basal, bolus] (U/min) held throughout."""
    insulin, clipped = self._pump(action)
    minutes = self.sensor.sample_time

    def one_minute(i, carry):
      patient, cho, bg_sum = carry
      meal = meal_at(state.scenario, state.t + i)
      patient = t1d_model.minute(p, patient, meal, insulin, self.substeps)
      return patient, cho + meal, bg_sum + t1d_model.blood_glucose(p, patient)
    zero = jnp.zeros((), state.last_cgm.dtype)
    patient, cho, bg_sum = jax.lax.fori_loop(0, minutes, one_minute,
                                             (state.patient, zero, zero))
    t = state.t + minutes
    # Steps start on the sensor's sample times, so it reads only at the last
    # minute and holds its previous reading before (simglucose's zero-order hold).
    reading, noise = self._measure(t1d_model.blood_glucose(p, patient), state.noise,
                                   key)
    bg = bg_sum / minutes
    obs = ((minutes - 1) * state.last_cgm + reading) / minutes
    done = (bg < self.bg_low) | (bg > self.bg_high)
    finite = jnp.all(jnp.isfinite(patient.x))
    nan_step = jnp.where((state.nan_step < 0) & ~finite, state.steps, state.nan_step)
    new = T1DState(patient, noise, state.scenario, t, reading, obs,
                   state.clipped + clipped, nan_step, state.steps + 1)
    lbgi, hbgi, risk_now = risk(bg)
    reward = risk(state.prev_obs)[2] - risk(obs)[2]
    info = dict(bg=bg, meal=cho / minutes, insulin=insulin, lbgi=lbgi, hbgi=hbgi,
                risk=risk_now, clipped=clipped, finite=finite)
    return new, obs, reward, done, info


class NonFiniteStateError(FloatingPointError):
  """The simulated state stopped being finite; names the patients and steps."""


def check_finite(states: T1DState, names) -> None:
  """Raise NonFiniteStateError naming each patient whose state went non-finite.

  `states` is a batch of states (leading axis over `names`) after any number of
  steps; nan_step keeps the first bad step so no trajectory needs storing.
  """
  steps = np.atleast_1d(np.asarray(states.nan_step))
  bad = [f"{names[i]} at step {int(s)}" for i, s in enumerate(steps) if s >= 0]
  if bad:
    raise NonFiniteStateError("the glucose-insulin state became NaN/inf for "
                              + "; ".join(bad) + " (check the actions given there)")
