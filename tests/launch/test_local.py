"""launch.local: per-process environments, dry run, and failure handling."""

import subprocess
import sys
import time

import pytest
from absl import app

from launch import local


def test_environments_of_a_two_process_cpu_job():
  envs = local.process_envs(2, 5555, cpu_devices=4)
  assert [e["MEDJAX_PROCESS_ID"] for e in envs] == ["0", "1"]
  assert {e["MEDJAX_COORDINATOR_ADDRESS"] for e in envs} == {"localhost:5555"}
  assert all(e["MEDJAX_NUM_PROCESSES"] == "2" for e in envs)
  assert all(e["XLA_FLAGS"].endswith("--xla_force_host_platform_device_count=4")
             and e["XLA_FLAGS"].count("device_count") == 1 for e in envs)


def test_gpus_are_split_between_processes():
  envs = local.process_envs(2, 1, gpus=4)
  assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0,1,2,3", "4,5,6,7"]
  assert "MEDJAX_PROCESS_ID" not in local.process_envs(1, 1)[0]


def test_dry_run_prints_and_runs_nothing():
  out = subprocess.run(
      [sys.executable, "-m", "launch.local", "--num_processes=2", "--port=7777",
       "--cpu_devices_per_process=4", "--dry_run", "--", "experiments.segmentation",
       "--workdir=/tmp/w"], capture_output=True, text=True, check=True,
      cwd=local.common.REPO_ROOT).stdout.splitlines()
  note, *out = out
  assert note == f"# python: {sys.executable} (the interpreter running this launcher)"
  assert len(out) == 2
  for i, line in enumerate(out):
    assert "MEDJAX_COORDINATOR_ADDRESS=localhost:7777" in line
    assert f"MEDJAX_PROCESS_ID={i}" in line
    assert line.endswith(f"{sys.executable} -m experiments.segmentation --workdir=/tmp/w")


def test_experiment_must_follow_the_separator():
  with pytest.raises(app.UsageError, match="after `--`"):
    local.experiment_command(["launch.local", "--workdir=/tmp"])
  assert local.experiment_command(["launch.local", "experiments.ehr", "--mode=cv"])[1:] == [
      "-m", "experiments.ehr", "--mode=cv"]


def test_one_failure_stops_the_other_processes():
  script = ("import os, sys, time\n"
            "if os.environ['MEDJAX_PROCESS_ID'] == '1': sys.exit(3)\n"
            "time.sleep(60)\n")
  start = time.perf_counter()
  code = local.run([sys.executable, "-c", script], local.process_envs(2, 1), poll_s=0.05)
  assert code == 3
  assert time.perf_counter() - start < 30


def test_sigterm_is_passed_on_to_every_process(tmp_path):
  script = ("import os, signal, sys, time, pathlib\n"
            "def stop(*_):\n"
            "  pathlib.Path(sys.argv[1], os.environ['MEDJAX_PROCESS_ID']).write_text('saved')\n"
            "  sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, stop)\n"
            "pathlib.Path(sys.argv[1], 'ready' + os.environ['MEDJAX_PROCESS_ID']).touch()\n"
            "time.sleep(60)\n")
  launcher = subprocess.Popen(
      [sys.executable, "-c", "import sys; from launch import local; sys.exit(local.run("
       f"[sys.executable, '-c', {script!r}, {str(tmp_path)!r}], local.process_envs(2, 1), "
       "0.05))"], cwd=local.common.REPO_ROOT)
  deadline = time.time() + 30
  while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
    assert time.time() < deadline
    time.sleep(0.05)
  launcher.terminate()  # SIGTERM, as a scheduler's preemption sends it
  assert launcher.wait(timeout=30) == 0
  assert (tmp_path / "0").read_text() == (tmp_path / "1").read_text() == "saved"
