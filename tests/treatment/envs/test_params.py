"""Parameter-file errors name the file and column, or the unknown name and the valid ones."""

import csv
import importlib.util

import numpy as np
import pytest

from medjax.engine.errors import InputError
from medjax.treatment.envs import params


def _write(path, header, rows):
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def _folder(tmp_path, drop=None):
  """Made-up parameter files (not simglucose's values) with every needed column."""
  cols = ["Name", "i"] + list(params.STATE_COLUMNS) + list(params.MODEL_FIELDS)
  cols = [c for c in cols if c != drop]
  rows = [[name] + [float(k + j) for j in range(len(cols) - 1)]
          for k, name in enumerate(["adult#001", "child#001"])]
  _write(tmp_path / params.PATIENT_FILE, cols, rows)
  _write(tmp_path / params.PUMP_FILE, ("Name",) + params.PUMP_FIELDS,
         [["P", 0, 30, 0.05, 0, 30, 0.05]])
  _write(tmp_path / params.SENSOR_FILE, ("Name",) + params.SENSOR_FIELDS,
         [["S", 0.7, -0.5, 16, 1.7, -5.5, 3, 39, 600],
          ["Odd", 0.7, -0.5, 16, 1.7, -5.5, 2.5, 39, 600]])
  return tmp_path


def test_load_patients_reads_the_columns_in_order(tmp_path):
  p = params.load_patients(["child#001", "adult#001"], _folder(tmp_path))
  header = ["Name", "i"] + list(params.STATE_COLUMNS) + list(params.MODEL_FIELDS)
  bw = header.index("BW") - 1  # value j + k sits in column j + 1 of row k
  np.testing.assert_array_equal(p.BW, [bw + 1, bw])
  np.testing.assert_array_equal(p.x0[1], np.arange(1, 14))
  assert params.patient_names(tmp_path) == ("adult#001", "child#001")


def test_unknown_patient_lists_valid_names(tmp_path):
  with pytest.raises(InputError, match=r"unknown name 'adult#011' in vpatient_params"
                     r".csv; valid names: adult#001, child#001"):
    params.load_patients(["adult#001", "adult#011"], _folder(tmp_path))


@pytest.mark.parametrize("column", ["kabs", "x0_13", "x0_ 4"])
def test_missing_column_names_file_and_column(tmp_path, column):
  folder = _folder(tmp_path, drop=column)
  with pytest.raises(InputError, match=f"vpatient_params.csv: missing column '{column}'"):
    params.load_patients(["adult#001"], folder)


def test_sensor_sample_time_must_be_whole_minutes(tmp_path):
  folder = _folder(tmp_path)
  assert params.load_sensor("S", folder).sample_time == 3
  with pytest.raises(InputError, match=r"sample_time of 'Odd' must be a whole number"):
    params.load_sensor("Odd", folder)


def test_missing_file_and_missing_package(tmp_path, monkeypatch):
  with pytest.raises(InputError, match="Quest.csv: no such parameter file"):
    params.load_quest(["adult#001"], tmp_path)
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  with pytest.raises(InputError, match="simglucose is not installed"):
    params.load_pump()
