"""pydicom's bundled test files, copied into a test's input folder."""

import os
import pathlib
import shutil

from pydicom.data import get_testdata_file

SERIES_DIR = pathlib.Path(get_testdata_file("DICOMDIR")).parent / "98892003"


def copy(dst: pathlib.Path, *names: str) -> list[pathlib.Path]:
  """Copies the named test files into `dst`; returns their new paths."""
  dst.mkdir(parents=True, exist_ok=True)
  out = []
  for name in names:
    target = dst / name
    shutil.copyfile(get_testdata_file(name), target)
    out.append(target)
  return out


def copy_series(dst: pathlib.Path) -> list[pathlib.Path]:
  """The DICOMDIR-referenced MR files of patient 98892003: 3 studies, 4 series."""
  shutil.copytree(SERIES_DIR, dst)
  return sorted(p for p in dst.rglob("*") if p.is_file())


def outputs(out_dir: pathlib.Path) -> list[pathlib.Path]:
  return sorted(pathlib.Path(r) / f for r, _, fs in os.walk(out_dir) for f in fs)
