"""A PID insulin controller on CGM glucose, in JAX (vmap over patients).

    rate = max(0, basal + kp * e + ki * I + kd * (e - e_prev) / dt),  e = cgm - target

in U/min, with I the integral of e (mg/dL * min) over the previous steps (updated
after the action, as simglucose's PIDController does) and the derivative 0 at an
episode's first step (simglucose starts from a previous reading of 0, which puts a
spike of kd * cgm / dt in its first action). `integral_limit` > 0 clamps I
(anti-windup). The env action is `[rate, 0]` (basal, no bolus): `pump_action`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class PidParams(NamedTuple):
  """Gains and set point; any field may be an array (e.g. a per-patient basal)."""
  kp: float | jax.Array = 0.0
  ki: float | jax.Array = 0.0
  kd: float | jax.Array = 0.0
  target: float | jax.Array = 140.0  # mg/dL
  basal: float | jax.Array = 0.0  # U/min
  integral_limit: float | jax.Array = 0.0  # mg/dL * min; 0: unclamped


class PidState(NamedTuple):
  integral: jax.Array
  prev_error: jax.Array
  started: jax.Array  # bool: a previous reading exists


def init(shape=()) -> PidState:
  zeros = jnp.zeros(shape)
  return PidState(zeros, zeros, jnp.zeros(shape, bool))


def step(params: PidParams, state: PidState, cgm, dt: float = 3.0):
  """(new state, insulin rate U/min) for one CGM reading taken `dt` minutes apart."""
  error = cgm - params.target
  derivative = jnp.where(state.started, (error - state.prev_error) / dt, 0.0)
  rate = (params.basal + params.kp * error + params.ki * state.integral
          + params.kd * derivative)
  integral = state.integral + error * dt
  limit = jnp.asarray(params.integral_limit)
  integral = jnp.where(limit > 0, jnp.clip(integral, -limit, limit), integral)
  return PidState(integral, error, jnp.ones_like(state.started)), jnp.maximum(rate, 0.0)


def pump_action(rate) -> jax.Array:
  """[basal, bolus] (..., 2) for a T1D env."""
  return jnp.stack([rate, jnp.zeros_like(rate)], axis=-1)
