"""Shared pieces of the pod launchers: the experiment command, quoting, dry runs.

Each launcher (launch/slurm.py, launch/tpu_vm.py, launch/k8s.py) takes the
experiment module and its flags after `--`:

  python -m launch.slurm --nodes=2 --gpus_per_node=8 --dry_run -- \
      experiments.segmentation --config=experiments/configs/segmentation.py:lung_ct \
      --workdir=/shared/runs/lung

and starts it on every process as `python -m <module> <flags...> --distributed=on`.
With --dry_run a launcher prints the files it would write and the commands it
would run, one per line and shell-quoted, and runs nothing.

The launchers register their absl flags only when run as programs (see their
`_define_flags`), so tests can import all of them beside the experiment modules,
whose flags (e.g. --workdir) would otherwise clash.
"""

import dataclasses
import pathlib
import re
import shlex
import subprocess
from typing import Sequence

from absl import app
from absl import flags
from absl import logging

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_PORT = 8476  # the coordinator port JAX itself picks on Cloud TPU
DISTRIBUTED_ON = "--distributed=on"
_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
THIS_PYTHON = "the interpreter running this launcher"
_EXAMPLE = ("-- experiments.segmentation "
            "--config=experiments/configs/segmentation.py:lung_ct --workdir=DIR")


@dataclasses.dataclass(frozen=True)
class Experiment:
  """An experiment module and its flags, as given after `--`."""
  module: str
  args: tuple[str, ...]

  def argv(self, python: str = "python") -> list[str]:
    """The command each process runs, with --distributed=on unless set."""
    args = list(self.args)
    if not any(a == "--distributed" or a.startswith("--distributed=") for a in args):
      args.append(DISTRIBUTED_ON)
    return [python, "-m", self.module, *args]


def python_comment(python: str, why: str) -> str:
  """The `# python: ...` line scripts and dry runs show, saying which interpreter and why."""
  return f"# python: {python} ({why})"


def known_experiments() -> list[str]:
  """The runnable modules under experiments/, e.g. experiments.segmentation."""
  return sorted(f"experiments.{p.stem}" for p in (REPO_ROOT / "experiments").glob("*.py")
                if p.stem != "__init__")


def check_module(module: str) -> None:
  """Raises app.UsageError unless `module` is a module file of this repository."""
  if not _MODULE.match(module):
    raise app.UsageError(
        f"expected an experiment module after `--`, such as experiments.segmentation, "
        f"got {module!r}; usage: ... {_EXAMPLE}")
  path = REPO_ROOT.joinpath(*module.split("."))
  if not (path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()):
    raise app.UsageError(f"unknown experiment module {module!r} after `--`; known: "
                         f"{', '.join(known_experiments())}")


def parse_experiment(argv: Sequence[str]) -> Experiment:
  """The experiment from main()'s argv: argv[0] is the program, the rest followed `--`."""
  rest = list(argv[1:])
  if not rest:
    raise app.UsageError(f"no experiment command: give it after `--`, e.g. {_EXAMPLE}")
  check_module(rest[0])
  return Experiment(rest[0], tuple(rest[1:]))


def from_flags(job_class):
  """A launcher's job dataclass, each field from the absl flag of the same name."""
  flag_values = flags.FLAGS
  return job_class(**{field.name: flag_values[field.name].value
                      for field in dataclasses.fields(job_class)})


def check_positive(flag: str, value: int) -> None:
  """Raises app.UsageError naming --flag unless value >= 1."""
  if value < 1:
    raise app.UsageError(f"--{flag} must be at least 1, got {value}")


def check_word(flag: str, value: str) -> None:
  """Raises app.UsageError naming --flag if value is empty or holds whitespace."""
  if not value or any(c.isspace() for c in value):
    raise app.UsageError(f"--{flag} must be a non-empty word without spaces, got {value!r}")


def write_file(path: pathlib.Path, text: str, dry_run: bool) -> None:
  """Writes text to path (making its folder), or prints it on a dry run."""
  if dry_run:
    print(text, end="" if text.endswith("\n") else "\n")
    return
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)
  logging.info("wrote %s", path)


def run_commands(commands: Sequence[Sequence[str]], dry_run: bool) -> None:
  """Runs the commands in turn, stopping at the first failure; prints them on a dry run."""
  for command in commands:
    line = shlex.join(command)
    if dry_run:
      print(line)
      continue
    logging.info("running: %s", line)
    try:
      subprocess.run(list(command), check=True)
    except FileNotFoundError as e:
      raise SystemExit(f"{command[0]} not found on PATH; needed for: {line}") from e
    except subprocess.CalledProcessError as e:
      raise SystemExit(f"failed with exit code {e.returncode}: {line}") from e
