"""The command line: a run that works, and a user's mistake (exit 2, one message)."""

import pathlib
import subprocess
import sys

from tests.privacy.deid import testfiles

_ROOT = pathlib.Path(__file__).resolve().parents[3]


def _main(*args):
  return subprocess.run([sys.executable, "-m", "experiments.deidentify", *args], cwd=_ROOT,
                        capture_output=True, text=True, timeout=120)


def test_run_writes_outputs_and_lists_skipped_files(tmp_path):
  testfiles.copy(tmp_path / "in", "CT_small.dcm")
  (tmp_path / "in" / "notes.txt").write_text("hello")
  result = _main(f"--input_dir={tmp_path / 'in'}", f"--output_dir={tmp_path / 'out'}",
                 "--date_shift_days_max=30")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "skipped notes.txt: not a DICOM file" in result.stdout
  assert "wrote 1 files" in result.stdout
  assert "wrote a new de-identification key" in result.stderr
  assert (tmp_path / "out.deid_key").exists() and (tmp_path / "out.deid_audit.csv").exists()


def test_output_inside_input_is_one_error_line(tmp_path):
  testfiles.copy(tmp_path / "in", "CT_small.dcm")
  out = tmp_path / "in" / "deid"
  result = _main(f"--input_dir={tmp_path / 'in'}", f"--output_dir={out}")
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  assert result.stderr == (f"error: --output_dir={out} is inside --input_dir={tmp_path / 'in'} "
                           "(or the same): the outputs would mix with the originals; give a "
                           "folder outside it\n")
  assert not out.exists()
