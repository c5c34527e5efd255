"""The JAX T1D simulator against simglucose 0.2.11: 24 h trajectories, pump, controller."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.treatment.envs import simglucose_ref as ref  # skips without simglucose

# pylint: disable=g-import-not-at-top,wrong-import-position
from simglucose.actuator.pump import InsulinPump
from simglucose.controller.basal_bolus_ctrller import BBController
from simglucose.patient.t1dpatient import Action as PatientAction
from simglucose.patient.t1dpatient import T1DPatient
from simglucose.simulation.env import Observation

from medjax.treatment.envs import controllers, params, scenario, t1d

MEALS = [(1.0, 45), (6.0, 70), (12.0, 80), (17.5, 15)]  # (hours after start, g)
MEAL_STEPS = [20, 120, 240, 350]  # the 3-min steps at which they are announced
STEPS = 480  # 24 h
ONE_PER_GROUP = ["adolescent#001", "adult#001", "child#001"]
ENV = t1d.T1DEnv(params.load_pump(), params.load_sensor(), noise=False)


def _patient(name):
  return jax.tree.map(lambda a: jnp.asarray(a[0]), params.load_patients([name]))


def _open_loop_actions(name):
  """Basal varied +-30 % around the steady rate, a bolus (meal / CR) at each meal."""
  p, quest = _patient(name), params.load_quest([name])
  k = np.arange(STEPS)
  basal = float(p.u2ss * p.BW / 6000) * (1 + 0.3 * np.sin(k / 37.0))
  bolus = np.zeros(STEPS)
  for (_, grams), step in zip(MEALS, MEAL_STEPS):
    bolus[step] = grams / float(quest.CR[0]) / 3
  return np.stack([basal, bolus], 1)


@jax.jit
def _jax_open_loop(p, actions):
  state, _ = ENV.reset(p, scenario.custom(MEALS, 8), jax.random.key(0))

  def body(state, action):
    state, _, _, done, info = ENV.step(p, state, action, jax.random.key(1))
    return state, (info["bg"], done)
  return jax.lax.scan(body, state, actions)[1]


@jax.jit
def _jax_basal_bolus(p, quest):
  state, obs = ENV.reset(p, scenario.custom(MEALS, 8), jax.random.key(0))

  def body(carry, _):
    state, obs, meal = carry
    action = controllers.basal_bolus(p, quest, obs, meal, ENV.sensor.sample_time)
    state, obs, _, _, info = ENV.step(p, state, action, jax.random.key(1))
    return (state, obs, info["meal"]), (info["bg"], action)
  return jax.lax.scan(body, (state, obs, jnp.float32(0)), None, length=STEPS)[1]


def _check_open_loop(name):
  actions = _open_loop_actions(name)
  want, _, _ = ref.run(name, MEALS, actions)
  got, _ = _jax_open_loop(_patient(name), jnp.asarray(actions, jnp.float32))
  diff = float(np.max(np.abs(np.asarray(got) - want)))
  print(f"{name}: max |BG - simglucose BG| over 24 h = {diff:.5f} mg/dL "
        f"(BG {want.min():.0f}-{want.max():.0f})")
  return diff


@pytest.mark.parametrize("name", ONE_PER_GROUP)
def test_open_loop_trajectory_matches_simglucose(name):
  assert _check_open_loop(name) < 0.02


@pytest.mark.slow
def test_open_loop_trajectory_matches_simglucose_all_patients():
  diffs = {name: _check_open_loop(name) for name in params.patient_names()}
  for group in ("adolescent", "adult", "child"):
    print(group, max(d for n, d in diffs.items() if n.startswith(group)))
  assert max(diffs.values()) < 0.02


@pytest.mark.parametrize("name", ["adult#002", "child#003"])
def test_basal_bolus_closed_loop_matches_simglucose(name):
  want_bg, want_actions, _ = ref.run(name, MEALS, controller=BBController())
  quest = jax.tree.map(lambda a: a[0], params.load_quest([name]))
  got_bg, got_actions = _jax_basal_bolus(_patient(name), quest)
  np.testing.assert_allclose(np.asarray(got_actions), want_actions, rtol=1e-4,
                             atol=1e-6)
  assert np.max(np.abs(np.asarray(got_bg) - want_bg)) < 0.05
  assert np.count_nonzero(want_actions[:, 1]) == len(MEALS)  # a bolus at each meal


def test_basal_bolus_matches_bbcontroller_policy():
  names = ["adolescent#004", "adult#007", "child#010"]
  ctrl, quest = BBController(), params.load_quest(names)
  batch = params.load_patients(names)
  for i, name in enumerate(names):
    p = jax.tree.map(lambda a, i=i: a[i], batch)
    q = jax.tree.map(lambda a, i=i: a[i], quest)
    for cgm in (60.0, 150.0, 151.0, 320.0):
      for meal in (0.0, 5.0, 23.3):
        want = ctrl.policy(Observation(CGM=cgm), 0, False, patient_name=name,
                           meal=meal, sample_time=3)
        got = controllers.basal_bolus(p, q, cgm, meal, 3)
        np.testing.assert_allclose(np.asarray(got), [want.basal, want.bolus],
                                   rtol=1e-5, atol=1e-7)


def test_pump_rounding_and_clipping_match_simglucose():
  pump, ours = InsulinPump.withName("Insulet"), params.load_pump("Insulet")
  rates = np.array([-1.0, 0.0, 1e-6, 0.0123456, 0.5, 12.3456789, 29.99, 30.0, 31.0,
                    500.0])
  basal, clip_b = t1d.pump_rate(jnp.asarray(rates), ours.min_basal, ours.max_basal,
                                ours.inc_basal)
  bolus, clip_o = t1d.pump_rate(jnp.asarray(rates), ours.min_bolus, ours.max_bolus,
                                ours.inc_bolus)
  np.testing.assert_allclose(basal, [pump.basal(r) for r in rates], rtol=1e-6,
                             atol=1e-9)
  np.testing.assert_allclose(bolus, [pump.bolus(r) for r in rates], rtol=1e-6,
                             atol=1e-9)
  outside = (rates < 0) | (rates > 30.0)
  np.testing.assert_array_equal(clip_b, outside)
  np.testing.assert_array_equal(clip_o, outside)


def test_termination_step_matches_simglucose():
  name = "child#001"
  actions = _open_loop_actions(name)
  actions[30:34, 1] = 0.8  # an overdose: BG falls below simglucose's limit of 10
  _, _, want_done = ref.run(name, MEALS, actions)
  _, done = _jax_open_loop(_patient(name), jnp.asarray(actions, jnp.float32))
  assert want_done.any()
  assert int(np.argmax(np.asarray(done))) == int(np.argmax(want_done))


def test_reference_patient_row_form():
  """The fast namedtuple row gives simglucose's own (pandas) patient's states exactly."""
  slow, fast = T1DPatient.withName("adult#003"), ref.patient("adult#003")
  for minute in range(40):
    act = PatientAction(CHO=40.0 if minute == 5 else 0.0, insulin=0.02)
    slow.step(act)
    fast.step(act)
  np.testing.assert_array_equal(slow.state, fast.state)
