"""runtime.run: input errors print one message and exit 2; bugs keep their traceback."""

import logging
import os
import pathlib
import subprocess
import sys

import pytest

from medjax.engine import runtime
from medjax.engine.errors import InputError

_ROOT = pathlib.Path(__file__).resolve().parents[2]
PROGRAM = """
from medjax.engine import runtime
from medjax.engine.errors import InputError

def main(argv):
  if argv[1:] == ["input"]:
    raise InputError("data.csv:7: bad row")
  if argv[1:] == ["bug"]:
    raise RuntimeError("a real bug")
  print("ran", argv[1:])

runtime.run(main)
"""


def _run(*args, env=None):
  environ = {k: v for k, v in os.environ.items() if k != "MEDJAX_TRACEBACK"}
  return subprocess.run([sys.executable, "-c", PROGRAM, *args], cwd=_ROOT,
                        env={**environ, **(env or {})}, capture_output=True, text=True,
                        timeout=120)


def test_input_error_prints_only_its_message_and_exits_2():
  result = _run("input")
  assert result.returncode == runtime.EXIT_INPUT_ERROR == 2
  assert result.stderr == "error: data.csv:7: bad row\n"


def test_other_exceptions_keep_their_traceback():
  result = _run("bug")
  assert result.returncode == 1
  assert "Traceback (most recent call last)" in result.stderr
  assert result.stderr.strip().endswith("RuntimeError: a real bug")


def test_flag_errors_are_input_errors():
  result = _run("--nosuchflag=1")
  assert result.returncode == 2
  assert result.stderr.startswith("error: Unknown command line flag 'nosuchflag'")
  assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, env", [(("--traceback", "input"), None),
                                       (("input",), {"MEDJAX_TRACEBACK": "1"}),
                                       (("--traceback", "--nosuchflag=1"), None)])
def test_traceback_flag_or_env_shows_the_traceback_of_input_errors(args, env):
  result = _run(*args, env=env)
  assert result.returncode == 2
  assert "Traceback (most recent call last)" in result.stderr
  assert "medjax.engine.errors.InputError" in result.stderr


def test_a_good_run_is_untouched():
  result = _run("--traceback=false", "arg")
  assert result.returncode == 0 and result.stdout == "ran ['arg']\n"


def test_stray_arguments_are_input_errors():
  with pytest.raises(InputError, match=r"unexpected arguments \['stray'\]"):
    runtime.start(["prog", "stray"])


def _record(path, level, msg):
  return logging.LogRecord("absl", level, path, 1, msg, ("x",), None)


def test_library_log_filter():
  keep = runtime._DropLibraryInfo().filter  # pylint: disable=protected-access
  tfds = "/venv/site-packages/tensorflow_datasets/core/dataset_builder.py"
  assert not keep(_record(tfds, logging.WARNING, "Using custom data configuration: %s"))
  assert not keep(_record(tfds, logging.INFO, "Generating split %s"))
  assert keep(_record(tfds, logging.WARNING, "Dataset %s is corrupt"))
  assert keep(_record("/repo/medjax/segmentation/data/sources.py", logging.INFO,
                      "preparing %s"))
