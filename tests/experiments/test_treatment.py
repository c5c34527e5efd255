"""experiments/treatment.py end to end: the quick preset trains, reports and resumes
exactly; bad patients and a NaN state stop with messages naming them."""

import csv
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.engine.toy_task import latest_state

_ROOT = pathlib.Path(__file__).resolve().parents[2]
_QUICK = "--config=experiments/configs/treatment.py:quick"


def _run(*args):
  env = {k: v for k, v in os.environ.items() if k != "MEDJAX_TRACEBACK"}
  return subprocess.run([sys.executable, "-m", "experiments.treatment", _QUICK, *args],
                        cwd=_ROOT, env=env, capture_output=True, text=True, timeout=900)


def _params_dir():
  from medjax.engine.errors import InputError  # pylint: disable=import-outside-toplevel
  from medjax.treatment.envs import params  # pylint: disable=import-outside-toplevel
  try:
    return params.simglucose_dir()
  except InputError:
    pytest.skip("simglucose's parameter files are not installed")


@pytest.mark.slow  # a subprocess: ~5 s idle, much more on a busy machine
def test_unknown_patient_is_one_message_naming_the_field(tmp_path):
  _params_dir()
  result = _run(f"--workdir={tmp_path / 'w'}", "--config.task.train_patients=adult#001,adult#42")
  assert result.returncode == 2, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert ("error: config.task.train_patients: unknown name 'adult#42' in "
          "vpatient_params.csv; valid names: adolescent#001") in result.stderr


@pytest.mark.slow
def test_quick_trains_reports_and_resumes_exactly(tmp_path):
  _params_dir()
  straight = _run(f"--workdir={tmp_path / 'a'}")
  assert straight.returncode == 0, straight.stderr[-3000:]
  for name in ("results.csv", "results.md", "bars.png", "traces.png", "learning_curves.png",
               "metrics.json"):
    assert (tmp_path / "a" / name).is_file(), name
  with open(tmp_path / "a" / "results.csv", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert {r["controller"] for r in rows} == {"ppo", "basal_bolus", "pid"}
  assert {r["group"] for r in rows} == {"val", "test_adult"}
  half = _run(f"--workdir={tmp_path / 'b'}", "--config.total_steps=3")
  assert half.returncode == 0, half.stderr[-3000:]
  resumed = _run(f"--workdir={tmp_path / 'b'}")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resumed from" in resumed.stderr
  a, b = latest_state(str(tmp_path / "a")), latest_state(str(tmp_path / "b"))
  assert int(b["step"]) == 6
  jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.mark.slow
def test_a_nan_patient_state_stops_naming_patient_and_step(tmp_path):
  folder = tmp_path / "params"
  shutil.copytree(_params_dir(), folder)
  path = folder / "vpatient_params.csv"
  with open(path, newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  for row in rows:
    if row["Name"] == "adult#002":
      row["kabs"] = "nan"  # gut absorption: NaN at the first meal
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  result = _run(f"--workdir={tmp_path / 'w'}", f"--config.task.params_dir={folder}")
  assert result.returncode != 0
  assert ("the glucose-insulin state of patient adult#002 (env 1) became NaN/inf at env "
          "step 1 (rollout of update 1)") in result.stderr, result.stderr[-3000:]
  assert "The last good checkpoint" in result.stderr
