"""The PID insulin controller on a hand-computed sequence, batched, and vs simglucose."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.treatment.agents import pid

PARAMS = pid.PidParams(kp=0.01, ki=0.001, kd=0.01, target=140.0, basal=0.02)
CGM = [160.0, 150.0, 120.0, 100.0, 200.0]
# e = cgm - 140; rate = 0.02 + 0.01 e + 0.001 I + 0.01 de/dt, I summed before the step:
#   e=20,  I=0,   d=0       -> 0.02 + 0.2                    = 0.22
#   e=10,  I=60,  d=-10/3   -> 0.02 + 0.1 + 0.06 - 0.0333    = 0.146667
#   e=-20, I=90,  d=-10     -> 0.02 - 0.2 + 0.09 - 0.1 < 0   -> 0
#   e=-40, I=30,  d=-20/3   -> 0.02 - 0.4 + 0.03 - 0.0667 <0 -> 0
#   e=60,  I=-90, d=100/3   -> 0.02 + 0.6 - 0.09 + 0.3333    = 0.863333
EXPECTED = [0.22, 0.1466667, 0.0, 0.0, 0.8633333]


def _run(params, cgm, shape=()):
  state, rates = pid.init(shape), []
  for reading in cgm:
    state, rate = pid.step(params, state, jnp.asarray(reading), dt=3.0)
    rates.append(rate)
  return jnp.stack(rates), state


def test_hand_computed_sequence():
  rates, state = _run(PARAMS, CGM)
  np.testing.assert_allclose(rates, EXPECTED, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(state.integral, 3.0 * (20 + 10 - 20 - 40 + 60))


def test_integral_limit_clamps_windup():
  params = PARAMS._replace(integral_limit=50.0)
  _, state = _run(params, [200.0, 200.0])
  np.testing.assert_allclose(state.integral, 50.0)  # 180 per step, clamped


def test_vmaps_over_patients_with_their_own_basal():
  basal = jnp.array([0.02, 0.5, 0.0])
  params = PARAMS._replace(basal=basal)
  cgm = jnp.array([CGM, [100.0] * 5, [250.0, 240, 230, 220, 210]])

  def episode(p, trace):
    def body(state, reading):
      return pid.step(p, state, reading, 3.0)
    return jax.lax.scan(body, pid.init(), trace)[1]

  batched = jax.vmap(episode, in_axes=(pid.PidParams(None, None, None, None, 0, None), 0))
  rates = batched(params, cgm)
  for i in range(3):
    single, _ = _run(PARAMS._replace(basal=float(basal[i])), list(np.asarray(cgm[i])))
    np.testing.assert_allclose(rates[i], single, rtol=1e-5, atol=1e-7)
  assert pid.pump_action(rates).shape == (3, 5, 2)
  np.testing.assert_array_equal(pid.pump_action(rates)[..., 1], 0.0)


def test_matches_simglucose_pid_after_its_first_step():
  ctrl = pytest.importorskip("simglucose.controller.pid_ctrller")
  params = pid.PidParams(kp=0.01, ki=0.0005, kd=0.05, target=140.0)
  cgm = [180.0, 200.0, 190.0, 210.0, 230.0, 215.0]
  ref = ctrl.PIDController(P=params.kp, I=params.ki, D=params.kd, target=params.target)
  obs = collections.namedtuple("Observation", ["CGM"])
  theirs = [ref.policy(obs(c), 0, False, sample_time=3.0).basal for c in cgm]
  ours, _ = _run(params, cgm)
  assert min(theirs[1:]) > 0  # no clipping on this trace
  np.testing.assert_allclose(ours[1:], theirs[1:], rtol=1e-5)
  # simglucose's first derivative is taken from a previous reading of 0.
  np.testing.assert_allclose(theirs[0] - float(ours[0]), params.kd * cgm[0] / 3.0,
                             rtol=1e-5)
