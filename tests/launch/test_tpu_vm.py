"""Tests for launch/tpu_vm.py: the gcloud commands, their dry run and the errors."""

import shlex

from absl import app
import pytest

from launch import common
from launch import tpu_vm
from tests.launch.conftest import run_cli

SEG = common.Experiment("experiments.segmentation",
                        ("--config=experiments/configs/segmentation.py:lung_ct",
                         "--workdir=/mnt/runs/lung"))
JOB = tpu_vm.TpuVmJob(tpu="pod-16", zone="us-west4-a", project="proj")
SSH = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod-16", "--zone=us-west4-a",
       "--project=proj", "--worker=all"]


def _remote_line(command):
  """The shell words of an ssh command's --command."""
  assert command[:-1] == SSH and command[-1].startswith("--command=")
  return shlex.split(command[-1].removeprefix("--command="))


def test_copies_code_installs_and_runs_on_all_workers():
  job = tpu_vm.TpuVmJob(tpu="pod-16", zone="us-west4-a", project="proj", install=True)
  mkdir, scp, install, run = tpu_vm.commands(job, SEG)
  assert _remote_line(mkdir) == ["mkdir", "-p", "medjax"]
  local = [str(common.REPO_ROOT / p) for p in ("README.md", "pyproject.toml", "medjax",
                                               "experiments")]
  assert scp == ["gcloud", "compute", "tpus", "tpu-vm", "scp", "--recurse", *local,
                 "pod-16:medjax", "--worker=all", "--zone=us-west4-a", "--project=proj"]
  assert _remote_line(install) == ["cd", "medjax", "&&", "python3", "-m", "pip", "install",
                                   "--quiet", "-e", ".[tpu]"]
  assert _remote_line(run) == ["cd", "medjax", "&&", "python3", "-m",
                               "experiments.segmentation", *SEG.args, "--distributed=on"]


def test_detached_run_outlives_the_launching_shell():
  job = tpu_vm.TpuVmJob(tpu="pod-16", zone="us-west4-a", project="proj", detach=True)
  words = _remote_line(tpu_vm.commands(job, SEG)[-1])
  assert words[:4] == ["cd", "medjax", "&&", "nohup"]
  assert words[-7:] == ["--distributed=on", ">", "medjax.log", "2>&1", "<", "/dev/null", "&"]


def test_git_checkout_instead_of_copy():
  job = tpu_vm.TpuVmJob(tpu="pod-16", zone="us-west4-a", project="proj",
                        git_url="https://github.com/lab/medjax.git", git_ref="v1.2",
                        remote_dir="~/code/medjax")
  sync, run = tpu_vm.commands(job, SEG)
  assert _remote_line(sync) == [
      "{", "test", "-d", "code/medjax/.git", "||", "git", "clone", "--quiet",
      "https://github.com/lab/medjax.git", "code/medjax;", "}", "&&", "cd", "code/medjax",
      "&&", "git", "fetch", "--quiet", "origin", "v1.2", "&&", "git", "checkout", "--quiet",
      "--force", "FETCH_HEAD"]
  assert _remote_line(run)[:2] == ["cd", "code/medjax"]


def test_without_project_uses_gclouds_default():
  run = tpu_vm.commands(tpu_vm.TpuVmJob(tpu="t", zone="z"), SEG)[-1]
  assert not any(arg.startswith("--project") for arg in run)


PYTHON_NOTE = ("# python: python3 (the workers' own, not this launcher's interpreter, "
               "whose path is not on a TPU VM; --python to change)")


def test_dry_run_prints_one_quoted_command_per_line(no_subprocess, capsys):
  tpu_vm.launch(JOB, SEG, dry_run=True)
  out = capsys.readouterr().out
  assert out.splitlines() == [PYTHON_NOTE, *(shlex.join(c) for c in tpu_vm.commands(JOB, SEG))]
  assert out.count("--worker=all") == 3


def test_python_flag_replaces_python3_everywhere(no_subprocess, capsys):
  job = tpu_vm.TpuVmJob(tpu="t", zone="z", install=True, python="/opt/py/bin/python")
  tpu_vm.launch(job, SEG, dry_run=True)
  note, *lines = capsys.readouterr().out.splitlines()
  assert note == "# python: /opt/py/bin/python (--python)"
  remote = [shlex.split(shlex.split(line)[-1].removeprefix("--command=")) for line in lines]
  assert [words[3] for words in remote[-2:]] == ["/opt/py/bin/python"] * 2  # install, run
  assert "python3" not in "".join(lines)


@pytest.mark.parametrize("kwargs, flag", [
    ({"tpu": ""}, "--tpu"), ({"zone": ""}, "--zone"), ({"remote_dir": "my dir"}, "--remote_dir"),
    ({"git_ref": "main"}, "--git_ref needs --git_url")])
def test_bad_flags_name_the_flag(kwargs, flag):
  job = tpu_vm.TpuVmJob(**{"tpu": "t", "zone": "z", **kwargs})
  with pytest.raises(app.UsageError, match=flag):
    tpu_vm.commands(job, SEG)


def test_cli_dry_run_runs_nothing(fake_tools):
  bin_dir, log = fake_tools
  result = run_cli("launch.tpu_vm", ["--tpu=pod-16", "--zone=us-west4-a", "--project=proj",
                                     "--dry_run", "--", SEG.module, *SEG.args], bin_dir)
  assert result.returncode == 0, result.stderr
  assert result.stdout.splitlines() == [PYTHON_NOTE,
                                        *(shlex.join(c) for c in tpu_vm.commands(JOB, SEG))]
  assert not log.exists()


def test_cli_requires_tpu(fake_tools):
  bin_dir, log = fake_tools
  result = run_cli("launch.tpu_vm", ["--zone=z", "--dry_run", "--", SEG.module], bin_dir)
  assert result.returncode == 1 and "--tpu" in result.stderr
  assert not log.exists()
