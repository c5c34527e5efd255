r"""Runs a medjax experiment as a multi-node Slurm GPU job (sbatch + srun).

  python -m launch.slurm --nodes=2 --gpus_per_node=8 --partition=gpu --time=24:00:00 \
      --venv=.venv --dry_run -- experiments.segmentation \
      --config=experiments/configs/segmentation.py:lung_ct --workdir=/shared/runs/lung

renders an sbatch script into --output (where the job's logs go too) and submits it
with `sbatch`; --dry_run prints the script and the sbatch command instead.

The script `srun`s one process per node (--processes=per_node, each sees all the
node's GPUs) or one per GPU (--processes=per_gpu). The first node of the allocation
coordinates: every process gets MEDJAX_COORDINATOR_ADDRESS=<first node>:<port> and
MEDJAX_NUM_PROCESSES=$SLURM_NTASKS, and its MEDJAX_PROCESS_ID from $SLURM_PROCID.
The repository, the venv and the experiment's --workdir must be on a file system
that every node shares.

The nodes run the interpreter that runs this launcher (sys.executable, so it too
must be on the shared file system), or with --venv the `python` of that venv
(activated first), or --python; the script says which in a `# python:` line.
"""

import dataclasses
import os
import pathlib
import shlex
import sys

from absl import app
from absl import flags

from launch import common

FLAGS = flags.FLAGS
PROCESSES = ("per_node", "per_gpu")


@dataclasses.dataclass(frozen=True)
class SlurmJob:
  """What to ask Slurm for; see _define_flags for the meaning of each field."""
  nodes: int = 1
  gpus_per_node: int = 8
  processes: str = "per_node"
  partition: str | None = None
  account: str | None = None
  time: str | None = None
  job_name: str = "medjax"
  venv: str | None = None
  output: str = "workdirs/slurm"
  cpus_per_task: int | None = None
  port: int = 0  # 0: 20000 + job id % 20000, so jobs sharing a first node differ
  python: str | None = None  # None: from --venv, else sys.executable

  def validate(self) -> None:
    """Raises app.UsageError naming the first bad flag."""
    common.check_positive("nodes", self.nodes)
    common.check_positive("gpus_per_node", self.gpus_per_node)
    if self.processes not in PROCESSES:
      raise app.UsageError(f"--processes must be one of {PROCESSES}, got {self.processes!r}")
    for flag in ("partition", "account", "time"):
      if getattr(self, flag) is not None:
        common.check_word(flag, getattr(self, flag))
    common.check_word("job_name", self.job_name)
    common.check_word("output", self.output)
    if self.cpus_per_task is not None:
      common.check_positive("cpus_per_task", self.cpus_per_task)
    if self.port < 0:
      raise app.UsageError(f"--port must be 0 (from the job id) or a port, got {self.port}")

  @property
  def output_dir(self) -> pathlib.Path:
    return pathlib.Path(os.path.abspath(os.path.expanduser(self.output)))

  @property
  def script_path(self) -> pathlib.Path:
    return self.output_dir / f"{self.job_name}.sbatch"

  @property
  def tasks_per_node(self) -> int:
    return self.gpus_per_node if self.processes == "per_gpu" else 1

  def interpreter(self) -> tuple[str, str]:
    """The python every process runs, and why that one."""
    if self.python:
      return self.python, "--python"
    if self.venv:
      return "python", "the --venv one, activated on each node; --python to change"
    return sys.executable, (f"{common.THIS_PYTHON}, so on a file system every node shares; "
                            "--venv or --python to change")


def _directives(job: SlurmJob) -> list[str]:
  """The #SBATCH lines (sbatch reads these itself; no shell quoting applies)."""
  options = [f"--job-name={job.job_name}", f"--nodes={job.nodes}",
             f"--ntasks-per-node={job.tasks_per_node}"]
  if job.processes == "per_gpu":
    options.append("--gpus-per-task=1")
  else:
    options.append(f"--gpus-per-node={job.gpus_per_node}")
  if job.cpus_per_task:
    options.append(f"--cpus-per-task={job.cpus_per_task}")
  for name in ("partition", "account", "time"):
    if getattr(job, name):
      options.append(f"--{name}={getattr(job, name)}")
  options.append(f"--output={job.output_dir}/%x-%j.out")
  return [f"#SBATCH {option}" for option in options]


def _activate_lines(venv: str | None) -> list[str]:
  if not venv:
    return []
  path = os.path.abspath(os.path.expanduser(venv))
  if os.path.basename(path) != "activate":
    path = os.path.join(path, "bin", "activate")
  return ["# shellcheck source=/dev/null", f"source {shlex.quote(path)}"]


def _port(job: SlurmJob) -> str:
  return str(job.port) if job.port else "$((20000 + SLURM_JOB_ID % 20000))"


def _srun_line(job: SlurmJob, experiment: common.Experiment) -> str:
  """srun starting every process; bash -c sets each one's id from its own SLURM_PROCID."""
  per_task = ('export MEDJAX_PROCESS_ID="$SLURM_PROCID" && exec '
              + shlex.join(experiment.argv(job.interpreter()[0])))
  srun = ["srun", "--kill-on-bad-exit=1"]
  if job.cpus_per_task:  # srun no longer inherits sbatch's --cpus-per-task
    srun.append(f"--cpus-per-task={job.cpus_per_task}")
  return shlex.join(srun) + " bash -c " + shlex.quote(per_task)


def render_script(job: SlurmJob, experiment: common.Experiment) -> str:
  """The sbatch script that runs `experiment` on every process of `job`."""
  job.validate()
  per = "node" if job.processes == "per_node" else "GPU"
  lines = [
      "#!/bin/bash",
      f"# medjax: {experiment.module} on {job.nodes} node(s) x {job.gpus_per_node} GPU(s),"
      f" one process per {per}. Rendered by launch/slurm.py.",
      *_directives(job),
      "set -euo pipefail",
      "",
      f"cd {shlex.quote(str(common.REPO_ROOT))}",
      *_activate_lines(job.venv),
      common.python_comment(*job.interpreter()),
      "",
      "# The first node of the allocation runs the coordinator (process 0). sed, not",
      "# head: head may quit before scontrol's last write, which pipefail makes fatal.",
      'coordinator_host="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)"',
      f'export MEDJAX_COORDINATOR_ADDRESS="${{coordinator_host}}:{_port(job)}"',
      'export MEDJAX_NUM_PROCESSES="$SLURM_NTASKS"',
      "",
      "# $SLURM_PROCID is expanded by each task's bash, not here.",
      "# shellcheck disable=SC2016",
      _srun_line(job, experiment),
  ]
  return "\n".join(lines) + "\n"


def submit(job: SlurmJob, experiment: common.Experiment, dry_run: bool) -> None:
  """Writes the script into job.output_dir and runs `sbatch` on it (or prints both)."""
  script = render_script(job, experiment)
  common.write_file(job.script_path, script, dry_run)
  common.run_commands([["sbatch", str(job.script_path)]], dry_run)


def _define_flags() -> None:
  flags.DEFINE_integer("nodes", 1, "Number of nodes.")
  flags.DEFINE_integer("gpus_per_node", 8, "GPUs on each node.")
  flags.DEFINE_enum("processes", "per_node", PROCESSES,
                    "per_node: one process per node seeing all its GPUs; "
                    "per_gpu: one process per GPU.")
  flags.DEFINE_string("partition", None, "Slurm partition (default: the cluster's).")
  flags.DEFINE_string("account", None, "Slurm account to charge.")
  flags.DEFINE_string("time", None, "Time limit, e.g. 24:00:00.")
  flags.DEFINE_string("job_name", "medjax", "Slurm job name; also names the script.")
  flags.DEFINE_string("venv", None, "Virtual environment (folder or its bin/activate) "
                      "to activate on the nodes.")
  flags.DEFINE_string("output", "workdirs/slurm", "Folder for the script and the logs.")
  flags.DEFINE_integer("cpus_per_task", None, "CPUs for each process (default: Slurm's).")
  flags.DEFINE_integer("port", 0, "Coordinator port on the first node (0: 20000 + the "
                       "job id mod 20000, so two jobs on one node do not collide).")
  flags.DEFINE_string("python", None, "Python interpreter on the nodes (default: `python` "
                      "of --venv, else the interpreter running this launcher).")
  flags.DEFINE_bool("dry_run", False, "Print the script and the sbatch command; run nothing.")


def main(argv):
  experiment = common.parse_experiment(argv)
  job = common.from_flags(SlurmJob)
  submit(job, experiment, FLAGS.dry_run)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
