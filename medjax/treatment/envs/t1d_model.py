"""The UVA/Padova 2008 glucose-insulin model, one patient, one minute at a time.

`derivative` is simglucose's `T1DPatient.model` (13 states: stomach solid and
liquid, gut, plasma and tissue glucose, plasma insulin, insulin actions, liver
insulin, two subcutaneous insulin depots, subcutaneous glucose). `minute` is
`T1DPatient.step`: the announced meal is eaten at 5 g/min, the gastric-emptying
reference (last_qsto, last_foodtaken) is reset when eating starts, and the ODE is
integrated over one minute with classic fixed-step RK4 (`substeps` steps).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from medjax.treatment.envs.params import PatientParams

EAT_RATE = 5.0  # g/min
U_TO_PMOL = 6000.0


class PatientState(NamedTuple):
  x: jax.Array  # (13,) model state
  planned_meal: jax.Array  # g announced but not yet eaten
  last_qsto: jax.Array  # mg in the stomach when the current meal started
  last_foodtaken: jax.Array  # g eaten since the current meal started
  last_cho: jax.Array  # g/min eaten in the previous minute


def initial_patient(p: PatientParams, x0=None) -> PatientState:
  x = jnp.asarray(p.x0 if x0 is None else x0)
  zero = jnp.zeros((), x.dtype)
  return PatientState(x, zero, x[0] + x[1], zero, zero)


def random_initial_state(p: PatientParams, key):
  """x0 with plasma, tissue and subcutaneous glucose drawn as simglucose's
  random_init_bg does: independent normals, mean x0, variance 0.1 * x0."""
  x0, idx = jnp.asarray(p.x0), jnp.array([3, 4, 12])
  draw = x0[idx] + jnp.sqrt(0.1 * x0[idx]) * jax.random.normal(key, (3,), x0.dtype)
  return x0.at[idx].set(draw)


def basal_rate(p: PatientParams):
  """The steady-state insulin rate u2ss * BW / 6000 (U/min)."""
  return p.u2ss * p.BW / U_TO_PMOL


def _gated(x, dx):
  """simglucose's `(x >= 0) * dx`: a compartment at or below zero stops changing."""
  return jnp.where(x >= 0, dx, 0.0)


def _kgut(qsto, dbar, p):
  safe = jnp.where(dbar > 0, dbar, 1.0)
  aa = 5.0 / (2.0 * safe * (1.0 - p.b))
  cc = 5.0 / (2.0 * safe * p.d)
  k = p.kmin + (p.kmax - p.kmin) / 2.0 * (
      jnp.tanh(aa * (qsto - p.b * safe)) - jnp.tanh(cc * (qsto - p.d * safe)) + 2.0)
  return jnp.where(dbar > 0, k, p.kmax)


def derivative(x, cho, insulin, last_qsto, last_foodtaken, p: PatientParams):
  """dx/dt (per minute) for meal intake `cho` (g/min) and `insulin` (U/min)."""
  d = cho * 1000.0
  ins = insulin * U_TO_PMOL / p.BW
  qsto = x[0] + x[1]
  kgut = _kgut(qsto, last_qsto + last_foodtaken * 1000.0, p)
  rat = p.f * p.kabs * x[2] / p.BW
  egp = p.kp1 - p.kp2 * x[3] - p.kp3 * x[8]
  et = jnp.where(x[3] > p.ke2, p.ke1 * (x[3] - p.ke2), 0.0)
  it = x[5] / p.Vi
  uidt = (p.Vm0 + p.Vmx * x[6]) * x[4] / (p.Km0 + x[4])
  return jnp.stack([
      -p.kmax * x[0] + d,
      p.kmax * x[0] - x[1] * kgut,
      kgut * x[1] - p.kabs * x[2],
      _gated(x[3], jnp.maximum(egp, 0.0) + rat - p.Fsnc - et - p.k1 * x[3]
             + p.k2 * x[4]),
      _gated(x[4], -uidt + p.k1 * x[3] - p.k2 * x[4]),
      _gated(x[5], -(p.m2 + p.m4) * x[5] + p.m1 * x[9] + p.ka1 * x[10]
             + p.ka2 * x[11]),
      -p.p2u * x[6] + p.p2u * (it - p.Ib),
      -p.ki * (x[7] - it),
      -p.ki * (x[8] - x[7]),
      _gated(x[9], -(p.m1 + p.m30) * x[9] + p.m2 * x[5]),
      _gated(x[10], ins - (p.ka1 + p.kd) * x[10]),
      _gated(x[11], p.kd * x[10] - p.ka2 * x[11]),
      _gated(x[12], -p.ksc * x[12] + p.ksc * x[3]),
  ])


def rk4(f, x, duration: float, substeps: int):
  """Classic RK4 of dx/dt = f(x) over `duration` in `substeps` equal steps."""
  h = duration / substeps

  def one(_, x):
    k1 = f(x)
    k2 = f(x + 0.5 * h * k1)
    k3 = f(x + 0.5 * h * k2)
    k4 = f(x + h * k3)
    return x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
  return jax.lax.fori_loop(0, substeps, one, x)


def minute(p: PatientParams, s: PatientState, meal, insulin, substeps: int = 2):
  """One minute: announce `meal` (g), eat up to 5 g of what is planned, integrate."""
  planned = s.planned_meal + meal
  to_eat = jnp.where(planned > 0, jnp.minimum(EAT_RATE, planned), 0.0)
  planned = jnp.where(planned > 0, jnp.maximum(planned - to_eat, 0.0), planned)
  starts = (to_eat > 0) & (s.last_cho <= 0)
  last_qsto = jnp.where(starts, s.x[0] + s.x[1], s.last_qsto)
  # simglucose adds to the eaten total while eating; the flag is on exactly
  # when this minute eats, so the sum is the same.
  foodtaken = jnp.where(starts, 0.0, s.last_foodtaken) + to_eat
  f = lambda x: derivative(x, to_eat, insulin, last_qsto, foodtaken, p)
  x = rk4(f, s.x, 1.0, substeps)
  return PatientState(x, planned, last_qsto, foodtaken, to_eat)


def blood_glucose(p: PatientParams, s: PatientState):
  """Subcutaneous glucose x13 / Vg in mg/dL: simglucose's patient observation."""
  return s.x[12] / p.Vg
