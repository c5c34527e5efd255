"""A user's mistakes, run through the real experiment mains: exit 2, one message, no traceback.

Each case fails before a model is built (a few seconds of start-up each).
"""

import os
import pathlib
import subprocess
import sys

import pytest

from tests.ehr import fake_data
from tests.segmentation.data import raw_fixtures

_ROOT = pathlib.Path(__file__).resolve().parents[2]
SEG = ("experiments.segmentation", "--config=experiments/configs/segmentation.py:quick")


def _run(tmp_path, module, *args):
  env = {k: v for k, v in os.environ.items() if k != "MEDJAX_TRACEBACK"}
  env["MEDJAX_DATA_DIR"] = str(tmp_path / "prepared")  # never a shared, prepared cache
  return subprocess.run([sys.executable, "-m", module, *args], cwd=_ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def _error_lines(result) -> list[str]:
  """The lines from `error: ...` on; asserts exit 2 and no traceback."""
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  lines = result.stderr.splitlines()
  starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
  assert len(starts) == 1, result.stderr[-3000:]
  return lines[starts[0]:]


def test_misspelled_config_field(tmp_path):
  result = _run(tmp_path, *SEG, "--config.totl_steps=5", f"--workdir={tmp_path / 'w'}")
  assert result.stderr == ("error: --config.totl_steps: no such config field; "
                           "did you mean total_steps?\n")


@pytest.mark.parametrize("args, message", [
    ((*SEG, "--config.total_steps=abc"),
     "error: --config.total_steps=abc: expected an integer, got 'abc'"),
    (("experiments.segmentation", "--config=experiments/configs/segmentation.py:nope"),
     "error: --config=experiments/configs/segmentation.py:nope: unknown segmentation "
     "preset 'nope'; known: ['drive', 'folder', 'hippocampus', 'lung_ct', 'quick', 'quick3d']"),
])
def test_bad_config_value_or_preset(tmp_path, args, message):
  result = _run(tmp_path, *args, f"--workdir={tmp_path / 'w'}")
  assert _error_lines(result) == [message]


@pytest.mark.parametrize("module, config", [
    ("experiments.segmentation", "segmentation.py:quick"),
    ("experiments.ehr", "ehr.py:quick"),
    ("experiments.molecule", "molecule.py:quick"),
])
def test_workdir_that_is_a_file_is_refused(tmp_path, module, config):
  (tmp_path / "afile").write_text("not a directory")
  result = _run(tmp_path, module, f"--config=experiments/configs/{config}",
                f"--workdir={tmp_path / 'afile'}")
  assert _error_lines(result) == [
      f"error: --workdir={tmp_path / 'afile'} is a file; give a directory"]


def test_missing_data_directory(tmp_path):
  result = _run(tmp_path, "experiments.segmentation",
                "--config=experiments/configs/segmentation.py:folder",
                f"--config.task.raw_dir={tmp_path / 'nowhere'}", f"--workdir={tmp_path / 'w'}")
  assert _error_lines(result) == [
      f"error: directory not found: {tmp_path / 'nowhere'} (expected it to hold images/ "
      "and masks/ folders)"]


def test_folder_dataset_names_every_bad_file(tmp_path):
  bad = raw_fixtures.write_bad_folder(tmp_path / "raw")
  result = _run(tmp_path, "experiments.segmentation",
                "--config=experiments/configs/segmentation.py:folder",
                f"--config.task.raw_dir={tmp_path / 'raw'}", f"--workdir={tmp_path / 'w'}")
  lines = _error_lines(result)
  assert lines[0] == f"error: {len(bad)} problems in {tmp_path / 'raw'}:"
  assert len(lines) == 1 + len(bad)
  for name, problem in bad.items():
    assert any(f"{name}.png" in line and problem in line for line in lines[1:]), name


def test_malformed_physionet_line_names_file_and_line(tmp_path):
  set_dir = pathlib.Path(fake_data.write_physionet_set(tmp_path, "a", 4, seed=0))
  stay = sorted(set_dir.glob("*.txt"))[1]
  lines = stay.read_text().splitlines()
  lines.insert(4, "00:10,HR,eighty")  # line 5 of the file
  stay.write_text("\n".join(lines) + "\n")
  result = _run(tmp_path, "experiments.ehr", "--config=experiments/configs/ehr.py:p12_gru",
                f"--config.task.data_root={tmp_path}", "--config.task.set_dir=set-a",
                f"--config.task.cache_dir={tmp_path / 'cache'}", f"--workdir={tmp_path / 'w'}")
  assert _error_lines(result) == [f"error: {stay}:5: value 'eighty' is not a number"]
