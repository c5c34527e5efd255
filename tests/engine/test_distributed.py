"""Where multi-process start-up takes coordinator, process count and id from."""

import pytest

from medjax.engine import distributed

_MEDJAX = {"MEDJAX_COORDINATOR_ADDRESS": "node0:1234", "MEDJAX_NUM_PROCESSES": "4",
           "MEDJAX_PROCESS_ID": "2"}


def test_one_process_needs_nothing():
  assert distributed.resolve("auto", None, None, None, {}) is None
  assert distributed.resolve("off", "h:1", 2, 0, _MEDJAX) is None


def test_flags_override_environment():
  kwargs = distributed.resolve("auto", "head:99", 2, 1, _MEDJAX)
  assert kwargs == {"coordinator_address": "head:99", "num_processes": 2, "process_id": 1}


def test_medjax_environment():
  assert distributed.resolve("auto", None, None, None, _MEDJAX) == {
      "coordinator_address": "node0:1234", "num_processes": 4, "process_id": 2}


def test_kubernetes_indexed_job_gives_the_process_id():
  env = {"MEDJAX_COORDINATOR_ADDRESS": "job-0.svc:1234", "MEDJAX_NUM_PROCESSES": "2",
         "JOB_COMPLETION_INDEX": "1"}
  assert distributed.resolve("auto", None, None, None, env)["process_id"] == 1
  # A one-pod job, or a bare index without a coordinator, stays one process.
  assert distributed.resolve("auto", None, None, None, {"JOB_COMPLETION_INDEX": "0"}) is None


def test_cluster_detection_is_left_to_jax():
  assert distributed.resolve("auto", None, None, None, {"SLURM_STEP_NUM_TASKS": "16"}) == {}
  assert distributed.resolve("auto", None, None, None, {"SLURM_STEP_NUM_TASKS": "1"}) is None
  # The batch shell of a 4-task job runs one python, not under srun: no start-up.
  assert distributed.resolve("auto", None, None, None, {"SLURM_NTASKS": "4"}) is None
  assert distributed.resolve("auto", None, None, None, {"OMPI_COMM_WORLD_SIZE": "2"}) == {}
  tpu = {"TPU_WORKER_HOSTNAMES": "t1k-0,t1k-1", "JOB_COMPLETION_INDEX": "1"}  # GKE TPU
  assert distributed.resolve("auto", None, None, None, tpu) == {}
  assert distributed.resolve("on", None, None, None, {}) == {}  # e.g. a TPU pod slice
  assert distributed.resolve("on", None, None, None, {"JOB_COMPLETION_INDEX": "3"}) == {}


def test_bad_settings_name_what_is_wrong():
  with pytest.raises(ValueError, match="coordinator_address"):
    distributed.resolve("auto", None, 2, 0, {})
  with pytest.raises(ValueError, match="num_processes"):  # a coordinator, no count
    distributed.resolve("auto", None, None, None, {"MEDJAX_COORDINATOR_ADDRESS": "h:1"})
  with pytest.raises(ValueError, match="process_id=5"):
    distributed.resolve("auto", "h:1", 2, 5, {})
  with pytest.raises(ValueError, match="MEDJAX_NUM_PROCESSES"):
    distributed.resolve("auto", None, None, None, {"MEDJAX_NUM_PROCESSES": "two"})
