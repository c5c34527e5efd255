"""Tests for launch/slurm.py: the rendered sbatch script, its dry run and its errors."""

import os
import shlex
import subprocess
import sys

from absl import app
import pytest

from launch import common
from launch import slurm
from tests.launch import conftest
from tests.launch.conftest import run_cli

SEG = common.Experiment("experiments.segmentation",
                        ("--config=experiments/configs/segmentation.py:lung_ct",
                         "--workdir=/shared/runs/lung"))
SRUN = ("srun --kill-on-bad-exit=1 bash -c 'export MEDJAX_PROCESS_ID=\"$SLURM_PROCID\" && "
        f"exec {shlex.quote(sys.executable)} -m experiments.segmentation "
        "--config=experiments/configs/segmentation.py:lung_ct --workdir=/shared/runs/lung "
        "--distributed=on'")


def _job(tmp_path, **kwargs):
  return slurm.SlurmJob(**{"nodes": 2, "gpus_per_node": 8, "output": str(tmp_path), **kwargs})


def test_dry_run_prints_script_and_sbatch_and_runs_nothing(tmp_path, no_subprocess, capsys):
  slurm.submit(_job(tmp_path), SEG, dry_run=True)
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == "#!/bin/bash"
  for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1",
               "#SBATCH --gpus-per-node=8", f"#SBATCH --output={tmp_path}/%x-%j.out",
               f"cd {common.REPO_ROOT}", "set -euo pipefail",
               'coordinator_host="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)"',
               'export MEDJAX_COORDINATOR_ADDRESS="${coordinator_host}:'
               '$((20000 + SLURM_JOB_ID % 20000))"',
               'export MEDJAX_NUM_PROCESSES="$SLURM_NTASKS"', SRUN,
               f"# python: {sys.executable} (the interpreter running this launcher, so on a "
               "file system every node shares; --venv or --python to change)"):
    assert line in lines
  assert lines[-1] == f"sbatch {tmp_path}/medjax.sbatch"
  assert not any(line.startswith("#SBATCH --gpus-per-task") for line in lines)
  assert not os.listdir(tmp_path)


def test_per_gpu_starts_one_task_per_gpu(tmp_path):
  script = slurm.render_script(_job(tmp_path, processes="per_gpu", gpus_per_node=4), SEG)
  assert "#SBATCH --ntasks-per-node=4\n#SBATCH --gpus-per-task=1\n" in script
  assert "--gpus-per-node" not in script


@pytest.mark.parametrize("kwargs, python, why", [
    ({}, sys.executable, "the interpreter running this launcher"),
    ({"venv": "/opt/venv"}, "python", "the --venv one"),
    ({"venv": "/opt/venv", "python": "python3.12"}, "python3.12", "--python"),
    ({"python": "/opt/py/bin/python"}, "/opt/py/bin/python", "--python")])
def test_python_defaults_to_this_interpreter_and_says_why(tmp_path, kwargs, python, why):
  script = slurm.render_script(_job(tmp_path, **kwargs), SEG)
  assert f"exec {shlex.quote(python)} -m experiments.segmentation" in script
  assert f"# python: {python} ({why}" in script
  assert "exec python -m" not in script or python == "python"


def test_options_and_venv(tmp_path):
  script = slurm.render_script(
      _job(tmp_path, partition="gpu", account="lab", time="24:00:00", job_name="lung",
           venv=str(tmp_path / "venv"), cpus_per_task=16), SEG)
  for line in ("#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --time=24:00:00",
               "#SBATCH --job-name=lung", "#SBATCH --cpus-per-task=16",
               f"source {tmp_path}/venv/bin/activate", "srun --kill-on-bad-exit=1 "
               "--cpus-per-task=16 bash -c"):
    assert line in script


VARIANTS = [{}, {"processes": "per_gpu"},
            {"partition": "gpu", "account": "a", "time": "1:00:00", "venv": "/opt/my venv"}]


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_script_passes_shellcheck(tmp_path, kwargs, shellcheck):
  experiment = common.Experiment("experiments.ehr", ("--config.note=it's \"$HOME\" `x`",))
  path = tmp_path / "job.sbatch"
  path.write_text(slurm.render_script(_job(tmp_path, **kwargs), experiment))
  result = subprocess.run([shellcheck, str(path)], capture_output=True, text=True,
                          check=False)
  assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_is_found_beside_the_interpreter_before_path(tmp_path, monkeypatch):
  venv_bin, other_bin = tmp_path / "venv" / "bin", tmp_path / "other"
  for folder in (venv_bin, other_bin):
    folder.mkdir(parents=True)
    (folder / "shellcheck").write_text("#!/bin/sh\n")
    (folder / "shellcheck").chmod(0o755)
  monkeypatch.setenv("PATH", str(other_bin))
  monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
  assert conftest.find_shellcheck() == str(venv_bin / "shellcheck")
  (venv_bin / "shellcheck").unlink()
  assert conftest.find_shellcheck() == str(other_bin / "shellcheck")
  monkeypatch.setenv("PATH", str(tmp_path))
  assert conftest.find_shellcheck() is None


def _fake_bin(tmp_path):
  """scontrol listing two nodes, srun running its command as 2 tasks, python echoing."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  fakes = {
      # Two writes, the second late: a reader quitting after one line would kill it.
      "scontrol": "echo gpu-a; sleep 0.1; echo gpu-b",
      "srun": 'while [ "${1#--}" != "$1" ]; do shift; done\n'
              'for i in 0 1; do SLURM_PROCID=$i "$@"; done',
      "python": 'echo "$MEDJAX_COORDINATOR_ADDRESS $MEDJAX_NUM_PROCESSES '
                '$MEDJAX_PROCESS_ID"; for a in "$@"; do echo "[$a]"; done',
  }
  for name, body in fakes.items():
    (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
    (bin_dir / name).chmod(0o755)
  return bin_dir


def test_script_gives_each_process_its_env_and_exact_args(tmp_path):
  tricky = "--config.note=it's a \"b\" $HOME `x`"
  path = tmp_path / "job.sbatch"
  path.write_text(slurm.render_script(  # python: the fake one on PATH below
      _job(tmp_path, python="python"), common.Experiment("experiments.ehr", (tricky,))))
  env = dict(os.environ, PATH=f"{_fake_bin(tmp_path)}:{os.environ['PATH']}",
             SLURM_JOB_NODELIST="gpu-[a-b]", SLURM_NTASKS="2", SLURM_JOB_ID="123456")
  out = subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True,
                       check=True).stdout
  args = ["[-m]", "[experiments.ehr]", f"[{tricky}]", "[--distributed=on]"]
  assert out.splitlines() == ["gpu-a:23456 2 0", *args, "gpu-a:23456 2 1", *args]


def test_submit_writes_script_and_runs_sbatch(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
  job = _job(tmp_path / "logs")
  slurm.submit(job, SEG, dry_run=False)
  assert calls == [["sbatch", str(tmp_path / "logs" / "medjax.sbatch")]]
  assert job.script_path.read_text() == slurm.render_script(job, SEG)


@pytest.mark.parametrize("kwargs, flag", [
    ({"nodes": 0}, "--nodes"), ({"gpus_per_node": 0}, "--gpus_per_node"),
    ({"processes": "per_core"}, "--processes"), ({"job_name": "my job"}, "--job_name"),
    ({"time": "1 day"}, "--time"), ({"cpus_per_task": 0}, "--cpus_per_task")])
def test_bad_flags_name_the_flag(tmp_path, kwargs, flag):
  with pytest.raises(app.UsageError, match=flag):
    slurm.render_script(_job(tmp_path, **kwargs), SEG)


def test_cli_dry_run_matches_and_runs_nothing(tmp_path, fake_tools):
  bin_dir, log = fake_tools
  args = ["--nodes=2", "--gpus_per_node=8", f"--output={tmp_path}/out", "--dry_run", "--",
          SEG.module, *SEG.args]
  result = run_cli("launch.slurm", args, bin_dir)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert SRUN in lines and lines[-1] == shlex.join(["sbatch", f"{tmp_path}/out/medjax.sbatch"])
  assert not log.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["--nodes=0", "--", "experiments.segmentation"], "--nodes must be at least 1"),
    (["--nodes=2"], "no experiment command: give it after `--`"),
    (["--", "experiments.nope"], "unknown experiment module"),
])
def test_cli_errors(fake_tools, args, message):
  bin_dir, log = fake_tools
  result = run_cli("launch.slurm", ["--dry_run", *args], bin_dir)
  assert result.returncode == 1 and message in result.stderr, result.stderr
  assert not log.exists()
