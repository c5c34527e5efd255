r"""Runs an experiment as N processes on this host (one host, any number of devices).

  python -m launch.local --num_processes=2 --cpu_devices_per_process=4 -- \
      experiments.segmentation --config=experiments/configs/segmentation.py:quick \
      --workdir=/tmp/seg_2proc

With `--num_processes=1` (default) it simply runs the experiment on all local
devices. With more, it starts each process with `MEDJAX_COORDINATOR_ADDRESS`,
`MEDJAX_NUM_PROCESSES` and `MEDJAX_PROCESS_ID` set (the experiment's
`--distributed=auto` picks these up), waits for all of them, and stops the rest
as soon as one fails. On GPUs, `--gpus_per_process` gives each process its own
`CUDA_VISIBLE_DEVICES`; on a CPU, `--cpu_devices_per_process` splits each
process's CPU into that many JAX devices (for testing multi-process code).
`--dry_run` prints each process's environment and command instead, after a
`# python:` line: the processes run the interpreter that runs this launcher.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time

from absl import app
from absl import flags

from launch import common

FLAGS = flags.FLAGS


def _define_flags():
  """Registered only when run as a program (see launch/common.py)."""
  flags.DEFINE_integer("num_processes", 1, "Processes to start.")
  flags.DEFINE_integer("cpu_devices_per_process", 0,
                       "CPU only: JAX devices per process (0: JAX's default).")
  flags.DEFINE_integer("gpus_per_process", 0,
                       "GPUs per process, assigned in order (0: all visible).")
  flags.DEFINE_integer("port", 0, "Coordinator port (0: a free one).")
  flags.DEFINE_bool("dry_run", False, "Print what would run; run nothing.")


def process_envs(num_processes: int, port: int, cpu_devices: int = 0,
                 gpus: int = 0) -> list[dict[str, str]]:
  """The extra environment of each process."""
  envs = []
  for i in range(num_processes):
    env = {}
    if num_processes > 1:
      env.update(MEDJAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                 MEDJAX_NUM_PROCESSES=str(num_processes), MEDJAX_PROCESS_ID=str(i))
    if cpu_devices:
      flags_now = os.environ.get("XLA_FLAGS", "").split()
      kept = [f for f in flags_now if "xla_force_host_platform_device_count" not in f]
      env["XLA_FLAGS"] = " ".join(
          [*kept, f"--xla_force_host_platform_device_count={cpu_devices}"])
      env["JAX_PLATFORMS"] = "cpu"
    if gpus:
      env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i * gpus + g) for g in range(gpus))
    envs.append(env)
  return envs


def experiment_command(argv: list[str]) -> list[str]:
  """`python -m <module> <flags>` from main()'s argv (the words after `--`).

  No `--distributed=on`: with one process nothing is initialised, and with
  more the MEDJAX_* variables make the experiment's default `auto` start up.
  """
  experiment = common.parse_experiment(argv)
  return [sys.executable, "-m", experiment.module, *experiment.args]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def run(command: list[str], envs: list[dict[str, str]], poll_s: float = 0.5) -> int:
  """Starts one process per env; returns the first non-zero exit code, else 0.

  SIGTERM to the launcher is passed on to every process (each saves a checkpoint
  and exits; rerunning the same command resumes). If one process fails, the
  others are stopped.
  """
  procs = [subprocess.Popen(command, env={**os.environ, **env}) for env in envs]

  def forward(signum, frame):
    del frame
    for p in procs:
      if p.poll() is None:
        p.send_signal(signum)
  previous = signal.signal(signal.SIGTERM, forward)
  try:
    while True:
      codes = [p.poll() for p in procs]
      failed = [c for c in codes if c not in (None, 0)]
      if failed or all(c == 0 for c in codes):
        return failed[0] if failed else 0
      time.sleep(poll_s)
  finally:
    signal.signal(signal.SIGTERM, previous)
    for p in procs:  # the rest of a failed job: ask, then insist
      if p.poll() is None:
        p.terminate()
    for p in procs:
      try:
        p.wait(timeout=30)
      except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def main(argv):
  command = experiment_command(argv)
  common.check_positive("num_processes", FLAGS.num_processes)
  port = FLAGS.port or _free_port()
  envs = process_envs(FLAGS.num_processes, port, FLAGS.cpu_devices_per_process,
                      FLAGS.gpus_per_process)
  if FLAGS.dry_run:
    print(common.python_comment(command[0], common.THIS_PYTHON))
    for env in envs:
      print(shlex.join([f"{k}={v}" for k, v in env.items()] + command))
    return
  sys.exit(run(command, envs))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
