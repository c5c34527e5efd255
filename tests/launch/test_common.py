"""Tests for launch/common.py: the experiment command, checks, dry-run printing."""

import subprocess
import sys

from absl import app
import pytest

from launch import common

SEG = ["prog", "experiments.segmentation", "--config=experiments/configs/segmentation.py:quick",
       "--workdir=/shared/runs/a b"]


def test_parse_experiment_takes_module_and_flags_and_adds_distributed():
  experiment = common.parse_experiment(SEG)
  assert experiment.module == "experiments.segmentation"
  assert experiment.argv() == ["python", "-m", *SEG[1:], "--distributed=on"]
  assert experiment.argv("python3")[0] == "python3"


@pytest.mark.parametrize("flag", ["--distributed=on", "--distributed=off", "--distributed"])
def test_distributed_flag_is_not_added_twice(flag):
  argv = common.parse_experiment(["prog", "experiments.ehr", flag]).argv()
  assert [a for a in argv if a.startswith("--distributed")] == [flag]


def test_missing_command_names_the_separator():
  with pytest.raises(app.UsageError, match="after `--`"):
    common.parse_experiment(["prog"])


def test_unknown_module_lists_the_known_ones():
  with pytest.raises(app.UsageError, match="unknown experiment module 'experiments.nope'.*"
                                           "experiments.segmentation"):
    common.parse_experiment(["prog", "experiments.nope"])


@pytest.mark.parametrize("first", ["--config=x.py", "experiments/segmentation.py", "python"])
def test_command_must_start_with_a_module(first):
  with pytest.raises(app.UsageError, match="experiment module"):
    common.parse_experiment(["prog", first, "--workdir=/tmp/x"])


def test_checks_name_the_flag():
  with pytest.raises(app.UsageError, match="--nodes must be at least 1, got 0"):
    common.check_positive("nodes", 0)
  with pytest.raises(app.UsageError, match="--job_name"):
    common.check_word("job_name", "two words")


def test_dry_run_prints_quoted_commands_and_runs_nothing(no_subprocess, capsys, tmp_path):
  common.write_file(tmp_path / "x.txt", "hello\n", dry_run=True)
  common.run_commands([["echo", "a b", "it's"], ["true"]], dry_run=True)
  assert capsys.readouterr().out == "hello\necho 'a b' 'it'\"'\"'s'\ntrue\n"
  assert not (tmp_path / "x.txt").exists()


def test_failing_or_missing_command_exits_with_the_command():
  with pytest.raises(SystemExit, match="exit code 3: sh -c 'exit 3'"):
    common.run_commands([["sh", "-c", "exit 3"]], dry_run=False)
  with pytest.raises(SystemExit, match="no-such-tool-xyz not found on PATH"):
    common.run_commands([["no-such-tool-xyz"]], dry_run=False)


def test_launchers_do_not_import_jax():
  code = ("import sys; import launch.slurm, launch.tpu_vm, launch.k8s; "
          "sys.exit('jax' in sys.modules)")
  subprocess.run([sys.executable, "-c", code], cwd=common.REPO_ROOT, check=True, timeout=60)
