"""Reference runs of simglucose 0.2.11 (imported only by tests that skip without it).

The patient is simglucose's own T1DPatient, given its CSV row as a namedtuple
instead of a pandas Series: the model code and float64 values are the same
(test_reference_patient_row_form checks this), attribute access is ~10x faster.
"""

import collections
import itertools
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("simglucose")

# pylint: disable=g-import-not-at-top,wrong-import-position
from simglucose.actuator.pump import InsulinPump
from simglucose.controller.base import Action
from simglucose.patient.t1dpatient import T1DPatient
from simglucose.sensor.cgm import CGMSensor
from simglucose.simulation.env import T1DSimEnv
from simglucose.simulation.scenario import CustomScenario

from medjax.treatment.envs import params

START = datetime(2018, 1, 1, 0, 0, 0)
_ROWS = pd.read_csv(params.simglucose_dir() / params.PATIENT_FILE)
_Row = collections.namedtuple("Row", [c.replace(" ", "_") for c in _ROWS.columns])


class NoiselessCGM(CGMSensor):
  """simglucose's own sensor (sample-and-hold, clipping) with a zero noise stream."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._noise_generator = itertools.repeat(0.0)

  def reset(self):
    super().reset()
    self._noise_generator = itertools.repeat(0.0)


def patient(name):
  row = _ROWS[_ROWS.Name == name].iloc[0]
  return T1DPatient(_Row(*row.values), init_state=np.array(row.iloc[2:15].values, float))


def env(name, meals, noiseless=True):
  sensor = (NoiselessCGM if noiseless else CGMSensor).withName("Dexcom")
  return T1DSimEnv(patient(name), sensor, InsulinPump.withName("Insulet"),
                   CustomScenario(START, meals))


def run(name, meals, actions=None, controller=None, steps=480):
  """(bg per step, actions taken, done per step) for fixed actions or a controller."""
  sim = env(name, meals)
  obs, reward, done, info = sim.reset()
  bgs, taken, dones = [], [], []
  for k in range(steps):
    if controller is not None:
      act = controller.policy(obs, reward, done, **info)
    else:
      act = Action(basal=float(actions[k, 0]), bolus=float(actions[k, 1]))
    obs, reward, done, info = sim.step(act)
    bgs.append(info["bg"])
    taken.append((act.basal, act.bolus))
    dones.append(done)
  return np.array(bgs), np.array(taken), np.array(dones)
