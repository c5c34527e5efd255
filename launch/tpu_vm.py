r"""Runs a medjax experiment on every worker of a Cloud TPU VM pod slice.

  python -m launch.tpu_vm --tpu=my-v5e-32 --zone=us-west4-a --project=my-project \
      --install --dry_run -- experiments.segmentation \
      --config=experiments/configs/segmentation.py:lung_ct --workdir=/mnt/runs/lung

does three things with `gcloud compute tpus tpu-vm` on all workers (--worker=all):
  1. puts the code in --remote_dir: scp's this checkout's package files there, or,
     with --git_url, clones the repository (once) and checks out --git_ref;
  2. with --install, runs `pip install -e '.[tpu]'` there;
  3. runs `python3 -m <experiment> ... --distributed=on` there, over ssh.
--dry_run prints those gcloud commands, one per line and shell-quoted, after a
`# python:` comment, and runs nothing. The workers run --python (default `python3`,
theirs: this machine's interpreter path does not exist on a TPU VM). On a TPU pod JAX finds the coordinator and the process ids itself, so
--distributed=on is all each worker needs. The experiment's --workdir must be one
that every worker sees: a shared disk (NFS, Filestore) or a bucket mounted with gcsfuse.
"""

import dataclasses
import shlex

from absl import app
from absl import flags
from absl import logging

from launch import common

FLAGS = flags.FLAGS
# What the workers need to install and run the experiments; scp'd into --remote_dir.
SYNC_PATHS = ("README.md", "pyproject.toml", "medjax", "experiments")


@dataclasses.dataclass(frozen=True)
class TpuVmJob:
  """Where to run; see _define_flags for the meaning of each field."""
  tpu: str = ""
  zone: str = ""
  project: str | None = None
  remote_dir: str = "medjax"
  git_url: str | None = None
  git_ref: str | None = None
  install: bool = False
  python: str = "python3"
  detach: bool = False

  def validate(self) -> None:
    """Raises app.UsageError naming the first bad flag."""
    common.check_word("tpu", self.tpu)
    common.check_word("zone", self.zone)
    if self.project is not None:
      common.check_word("project", self.project)
    common.check_word("remote_dir", self.remote_dir)
    if self.git_ref and not self.git_url:
      raise app.UsageError("--git_ref needs --git_url (without it the local code is copied)")

  @property
  def remote(self) -> str:
    """--remote_dir for remote shells and scp; relative paths are under the home folder."""
    return self.remote_dir[2:] if self.remote_dir.startswith("~/") else self.remote_dir


def _gcloud(verb: str, *args: str) -> list[str]:
  return ["gcloud", "compute", "tpus", "tpu-vm", verb, *args]


def _location(job: TpuVmJob) -> list[str]:
  project = [f"--project={job.project}"] if job.project else []
  return [f"--zone={job.zone}", *project]


def ssh(job: TpuVmJob, remote_command: str) -> list[str]:
  """gcloud command running `remote_command` (a shell line) on every worker."""
  return _gcloud("ssh", job.tpu, *_location(job), "--worker=all",
                 f"--command={remote_command}")


def sync_commands(job: TpuVmJob) -> list[list[str]]:
  """Commands putting the code into job.remote on every worker."""
  remote = shlex.quote(job.remote)
  if job.git_url:
    ref = shlex.quote(job.git_ref or "main")
    return [ssh(job, f"{{ test -d {remote}/.git || git clone --quiet "
                     f"{shlex.quote(job.git_url)} {remote}; }} && cd {remote} && "
                     f"git fetch --quiet origin {ref} && git checkout --quiet --force FETCH_HEAD")]
  # Copying the folders into an existing directory lands them at the same place on
  # every run (copying the checkout itself would nest it on the second sync).
  local = [str(common.REPO_ROOT / path) for path in SYNC_PATHS]
  return [ssh(job, f"mkdir -p {remote}"),
          _gcloud("scp", "--recurse", *local, f"{job.tpu}:{job.remote}",
                  "--worker=all", *_location(job))]


def commands(job: TpuVmJob, experiment: common.Experiment) -> list[list[str]]:
  """Every gcloud command of the launch, in order: sync, install, run."""
  job.validate()
  cd = f"cd {shlex.quote(job.remote)} && "
  result = sync_commands(job)
  if job.install:
    pip = [job.python, "-m", "pip", "install", "--quiet", "-e", ".[tpu]"]
    result.append(ssh(job, cd + shlex.join(pip)))
  run = shlex.join(experiment.argv(job.python))
  if job.detach:  # survives the launching shell; output in <remote_dir>/medjax.log
    run = f"nohup {run} > medjax.log 2>&1 < /dev/null &"
  result.append(ssh(job, cd + run))
  return result


def python_comment(job: TpuVmJob) -> str:
  """The `# python:` line: the workers' interpreter, not this machine's."""
  why = ("--python" if job.python != TpuVmJob.python else
         "the workers' own, not this launcher's interpreter, whose path is not on a TPU VM; "
         "--python to change")
  return common.python_comment(job.python, why)


def launch(job: TpuVmJob, experiment: common.Experiment, dry_run: bool) -> None:
  """Runs (or, on a dry run, prints) the launch's gcloud commands."""
  steps = commands(job, experiment)
  if dry_run:
    print(python_comment(job))
  else:
    logging.info("%s", python_comment(job).removeprefix("# "))
  common.run_commands(steps, dry_run)


def _define_flags() -> None:
  flags.DEFINE_string("tpu", None, "Name of the TPU VM (pod slice).", required=True)
  flags.DEFINE_string("zone", None, "Its zone, e.g. us-west4-a.", required=True)
  flags.DEFINE_string("project", None, "Its project (default: gcloud's).")
  flags.DEFINE_string("remote_dir", "medjax",
                      "Code folder on the workers; relative paths are under the home folder.")
  flags.DEFINE_string("git_url", None, "Clone this repository on the workers instead of "
                      "copying the local code.")
  flags.DEFINE_string("git_ref", None, "Branch, tag or commit to check out (default main).")
  flags.DEFINE_bool("install", False, "pip install -e '.[tpu]' on the workers first.")
  flags.DEFINE_string("python", "python3", "Python interpreter on the workers.")
  flags.DEFINE_bool("detach", False, "Start the run in the background on the workers "
                    "(log: <remote_dir>/medjax.log), so that it outlives this shell.")
  flags.DEFINE_bool("dry_run", False, "Print the gcloud commands; run nothing.")


def main(argv):
  experiment = common.parse_experiment(argv)
  job = common.from_flags(TpuVmJob)
  launch(job, experiment, FLAGS.dry_run)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
