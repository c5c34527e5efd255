"""Parameter files of the UVA/Padova T1D simulator, read from simglucose or a folder.

The four CSV files (`vpatient_params.csv`, `pump_params.csv`, `sensor_params.csv`,
`Quest.csv`) ship inside the `simglucose` wheel; they are found there without
importing simglucose (its `__init__` imports gym), or read from a folder given
by the caller. Each reader checks the columns it needs and raises InputError
naming the file and the column, or the unknown row name with the valid ones.
"""

from __future__ import annotations

import csv
import importlib.util
import pathlib
from typing import NamedTuple

import numpy as np

from medjax.engine.errors import InputError

PATIENT_FILE = "vpatient_params.csv"
PUMP_FILE = "pump_params.csv"
SENSOR_FILE = "sensor_params.csv"
QUEST_FILE = "Quest.csv"

# Model constants the ODE reads (names as in the CSV header).
MODEL_FIELDS = ("BW", "kabs", "kmax", "kmin", "b", "d", "Vg", "Vi", "Vmx", "Km0",
                "k1", "k2", "p2u", "m1", "m2", "m4", "m30", "ki", "kp1", "kp2",
                "kp3", "f", "ke1", "ke2", "Fsnc", "Vm0", "kd", "ksc", "ka1", "ka2",
                "u2ss", "Ib")
STATE_COLUMNS = tuple(f"x0_{i:2d}" for i in range(1, 14))  # "x0_ 1" ... "x0_13"
PUMP_FIELDS = ("min_bolus", "max_bolus", "inc_bolus", "min_basal", "max_basal",
               "inc_basal")
SENSOR_FIELDS = ("PACF", "gamma", "lambda", "delta", "xi", "sample_time", "min", "max")
QUEST_FIELDS = ("CR", "CF")

PatientParams = NamedTuple("PatientParams", [(f, np.ndarray) for f in MODEL_FIELDS]
                           + [("x0", np.ndarray)])
PatientParams.__doc__ = "Model constants, each of shape (P,), and x0 of shape (P, 13)."


class PumpParams(NamedTuple):
  """Insulin pump limits and increments (U/min; increments in pmol/min)."""
  min_bolus: float
  max_bolus: float
  inc_bolus: float
  min_basal: float
  max_basal: float
  inc_basal: float


class SensorParams(NamedTuple):
  """CGM sensor: Johnson-SU noise constants, sample time (min), clip range."""
  PACF: float
  gamma: float
  lam: float
  delta: float
  xi: float
  sample_time: int
  min: float
  max: float


class QuestParams(NamedTuple):
  """Basal-bolus controller quest: carbohydrate ratio (g/U), correction factor."""
  CR: np.ndarray
  CF: np.ndarray


def simglucose_dir() -> pathlib.Path:
  """The `params` folder of the installed simglucose, or InputError."""
  spec = importlib.util.find_spec("simglucose")
  if spec is None or not spec.submodule_search_locations:
    raise InputError("simglucose is not installed: install it "
                     "(pip install --no-deps simglucose==0.2.11) or give the folder "
                     "holding vpatient_params.csv")
  return pathlib.Path(list(spec.submodule_search_locations)[0]) / "params"


def _read_rows(folder, filename: str, fields) -> dict[str, dict[str, str]]:
  """Rows of a CSV keyed by Name, after checking that every field is a column."""
  path = pathlib.Path(folder if folder is not None else simglucose_dir()) / filename
  if not path.is_file():
    raise InputError(f"{path}: no such parameter file")
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    header = reader.fieldnames or []
    for field in ("Name",) + tuple(fields):
      if field not in header:
        raise InputError(f"{path}: missing column {field!r}")
    return {row["Name"]: row for row in reader}


def _pick(rows: dict, names, filename: str):
  unknown = [n for n in names if n not in rows]
  if unknown:
    raise InputError(f"unknown name {unknown[0]!r} in {filename}; valid names: "
                     + ", ".join(rows))
  return [rows[n] for n in names]


def patient_names(folder=None) -> tuple[str, ...]:
  """The virtual patients' names, in file order."""
  return tuple(_read_rows(folder, PATIENT_FILE, MODEL_FIELDS + STATE_COLUMNS))


def load_patients(names, folder=None, dtype=np.float32) -> PatientParams:
  """Stacked constants of the named patients (e.g. 'adult#001')."""
  rows = _pick(_read_rows(folder, PATIENT_FILE, MODEL_FIELDS + STATE_COLUMNS),
               list(names), PATIENT_FILE)
  num = lambda cols: np.array([[float(r[c]) for c in cols] for r in rows], dtype)
  consts = num(MODEL_FIELDS)
  return PatientParams(*consts.T, x0=num(STATE_COLUMNS))


def load_quest(names, folder=None) -> QuestParams:
  rows = _pick(_read_rows(folder, QUEST_FILE, QUEST_FIELDS), list(names), QUEST_FILE)
  return QuestParams(*(np.array([float(r[c]) for r in rows], np.float32)
                       for c in QUEST_FIELDS))


def load_pump(name: str = "Insulet", folder=None) -> PumpParams:
  (row,) = _pick(_read_rows(folder, PUMP_FILE, PUMP_FIELDS), [name], PUMP_FILE)
  return PumpParams(*(float(row[c]) for c in PUMP_FIELDS))


def load_sensor(name: str = "Dexcom", folder=None) -> SensorParams:
  (row,) = _pick(_read_rows(folder, SENSOR_FILE, SENSOR_FIELDS), [name], SENSOR_FILE)
  values = [float(row[c]) for c in SENSOR_FIELDS]
  if values[5] != int(values[5]) or values[5] < 1:
    raise InputError(f"{SENSOR_FILE}: sample_time of {name!r} must be a whole "
                     f"number of minutes, got {row['sample_time']}")
  values[5] = int(values[5])
  return SensorParams(*values)
