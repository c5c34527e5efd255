"""Workdir checks: a file, a path under a file or an unwritable directory is refused."""

import errno
import os

import pytest

from medjax.engine import workdir
from medjax.engine.errors import InputError


def test_new_nested_workdir_is_created(tmp_path):
  path = tmp_path / "runs" / "a"
  assert workdir.require_writable(str(path)) == str(path)
  assert path.is_dir() and os.listdir(path) == []  # the write probe left nothing


def test_a_file_or_a_path_under_a_file_is_refused(tmp_path):
  (tmp_path / "afile").write_text("x")
  with pytest.raises(InputError) as e:
    workdir.require_writable(str(tmp_path / "afile"))
  assert str(e.value) == f"--workdir={tmp_path / 'afile'} is a file; give a directory"
  with pytest.raises(InputError, match=f"under a file, {tmp_path / 'afile'}"):
    workdir.require_writable(str(tmp_path / "afile" / "sub"), "--output_dir")


def test_urls_and_empty_are_refused():
  with pytest.raises(InputError, match="--workdir=gs://b/run: URLs are not supported"):
    workdir.require_writable("gs://b/run")
  with pytest.raises(InputError, match="--out_dir is empty"):
    workdir.require_writable("", "--out_dir")


def _refuse_writes(monkeypatch):
  """As a read-only disk would: root ignores chmod, so the write probe is what refuses."""
  probed = []

  def probe(directory):
    probed.append(directory)
    raise OSError(errno.EROFS, "Read-only file system")
  monkeypatch.setattr(workdir, "_probe", probe)
  return probed


def test_read_only_workdir_is_refused(tmp_path, monkeypatch):
  probed = _refuse_writes(monkeypatch)
  with pytest.raises(InputError) as e:
    workdir.require_writable(str(tmp_path))
  assert str(e.value) == f"--workdir={tmp_path} is not writable: Read-only file system"
  assert probed == [str(tmp_path)]


def test_new_workdir_under_a_read_only_parent_names_the_parent(tmp_path, monkeypatch):
  probed = _refuse_writes(monkeypatch)
  with pytest.raises(InputError, match=f"its parent {tmp_path}. is not writable"):
    workdir.require_writable(str(tmp_path / "new" / "run"))
  assert probed == [str(tmp_path)] and not (tmp_path / "new").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory_for_real(tmp_path):
  (tmp_path / "ro").mkdir()
  os.chmod(tmp_path / "ro", 0o500)
  try:
    with pytest.raises(InputError, match="is not writable"):
      workdir.require_writable(str(tmp_path / "ro" / "run"))
  finally:
    os.chmod(tmp_path / "ro", 0o700)


def test_the_real_probe_writes_and_removes_a_file(tmp_path):
  workdir._probe(str(tmp_path))  # pylint: disable=protected-access
  assert os.listdir(tmp_path) == []
  with pytest.raises(OSError):
    workdir._probe(str(tmp_path / "missing"))  # pylint: disable=protected-access


def test_require_existing(tmp_path):
  assert workdir.require_existing(str(tmp_path)) == str(tmp_path)
  with pytest.raises(InputError, match=r"--workdir=.*gone does not exist \(expected a trained"):
    workdir.require_existing(str(tmp_path / "gone"))
  (tmp_path / "f").write_text("x")
  with pytest.raises(InputError, match="is a file, not a directory"):
    workdir.require_existing(str(tmp_path / "f"), "--input_dir", "images")


def test_require_output_file(tmp_path):
  out = tmp_path / "sub" / "pred.csv"
  assert workdir.require_output_file(str(out), "--output_csv") == str(out)
  assert out.parent.is_dir()
  with pytest.raises(InputError, match="is a directory; give a file name"):
    workdir.require_output_file(str(tmp_path), "--output_csv")
  (tmp_path / "f").write_text("x")
  with pytest.raises(InputError, match=r"--output_csv=.*f/p.csv: its folder .*f is a file"):
    workdir.require_output_file(str(tmp_path / "f" / "p.csv"), "--output_csv")
