"""Multi-process start-up: `jax.distributed.initialize` from flags or the environment.

Every experiment main calls `initialize()` first. Where the coordinator, process
count and process id come from, first match wins:

1. flags `--coordinator_address`, `--num_processes`, `--process_id`;
2. `MEDJAX_COORDINATOR_ADDRESS`, `MEDJAX_NUM_PROCESSES`, `MEDJAX_PROCESS_ID`
   (the id falls back to `JOB_COMPLETION_INDEX`, set by a Kubernetes Indexed Job);
3. JAX's own cluster detection (SLURM under `srun`, Cloud TPU VM pods, Open MPI).

`--distributed=auto` (default) initialises when (1) or (2) names more than one
process, or a SLURM job step, Open MPI or `TPU_WORKER_HOSTNAMES` announce more than
one; `on` always initialises; `off` never does. One process needs none of this.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from absl import flags
from absl import logging

_MODE = flags.DEFINE_enum("distributed", "auto", ["auto", "on", "off"],
                          "Multi-process start-up (see medjax/engine/distributed.py).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0's coordinator service.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")


def resolve(mode: str, coordinator: str | None, num_processes: int | None,
            process_id: int | None, environ: Mapping[str, str]) -> dict | None:
  """Keyword arguments for `jax.distributed.initialize`, or None for one process."""
  if mode == "off":
    return None
  coordinator = coordinator or environ.get("MEDJAX_COORDINATOR_ADDRESS")
  num_processes = num_processes or _env_int(environ, "MEDJAX_NUM_PROCESSES")
  if process_id is None:
    process_id = _env_int(environ, "MEDJAX_PROCESS_ID", "JOB_COMPLETION_INDEX")
  explicit = {"coordinator_address": coordinator, "num_processes": num_processes,
              "process_id": process_id}
  given = {k: v for k, v in explicit.items() if v is not None}
  if coordinator is None and num_processes is None:  # a bare index is not enough
    return {} if mode == "on" or _cluster_processes(environ) > 1 else None  # JAX detects
  if mode == "auto" and num_processes == 1:
    return None
  if len(given) < 3:
    missing = sorted(set(explicit) - set(given))
    raise ValueError(f"multi-process start-up: {missing} not given (flags "
                     "--coordinator_address/--num_processes/--process_id or MEDJAX_* env)")
  if not 0 <= process_id < num_processes:
    raise ValueError(f"--process_id={process_id} is outside 0..{num_processes - 1}")
  return explicit


def _cluster_processes(environ) -> int:
  """Processes a cluster's own variables announce: a SLURM job step (set by `srun`,
  not by the batch shell), Open MPI, or a multi-host Cloud TPU slice; else 1."""
  hosts = environ.get("TPU_WORKER_HOSTNAMES", "")
  counts = (_env_int(environ, "SLURM_STEP_NUM_TASKS"),
            _env_int(environ, "OMPI_COMM_WORLD_SIZE"),
            len(hosts.split(",")) if hosts else None)
  return max(c for c in (*counts, 1) if c is not None)


def _env_int(environ, *names):
  for name in names:
    if environ.get(name, "") != "":
      try:
        return int(environ[name])
      except ValueError as e:
        raise ValueError(f"environment variable {name}={environ[name]!r} is not an "
                         "integer") from e
  return None


def initialize() -> None:
  """Starts JAX's distributed runtime when flags or the environment ask for it."""
  kwargs = resolve(_MODE.value, _COORDINATOR.value, _NUM_PROCESSES.value,
                   _PROCESS_ID.value, os.environ)
  if kwargs is None:
    return
  import jax  # pylint: disable=import-outside-toplevel
  jax.distributed.initialize(**kwargs)
  if jax.process_index() != 0:  # logs and prints from process 0 only; warnings from all
    logging.set_verbosity(logging.WARNING)
    sys.stdout = open(os.devnull, "w", encoding="utf-8")  # pylint: disable=consider-using-with
  logging.info("process %d of %d; %d local and %d global devices", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def process_zero_first(fn):
  """Runs `fn()` on process 0, then, after a barrier, on the others; returns its result.

  For set-up that writes to a shared disk (preparing a data set, fitting and
  saving preprocessing statistics): process 0 writes, the others then read.
  """
  import jax  # pylint: disable=import-outside-toplevel
  if jax.process_count() == 1:
    return fn()
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  result = fn() if jax.process_index() == 0 else None
  multihost_utils.sync_global_devices("medjax: process 0 set-up done")
  return fn() if jax.process_index() != 0 else result
