r"""Runs a medjax experiment as a multi-node Kubernetes Job (GPU nodes or GKE TPU slices).

  python -m launch.k8s --nodes=2 --gpus_per_node=8 --image=ghcr.io/me/medjax:latest \
      --dry_run -- experiments.segmentation \
      --config=experiments/configs/segmentation.py:lung_ct --workdir=/shared/runs/lung
  python -m launch.k8s --nodes=4 --accelerator=tpu --tpu_accelerator=tpu-v5-lite-podslice \
      --tpu_topology=4x4 --image=... -- experiments.ehr --workdir=/mnt/runs/ehr

writes a manifest (YAML) into --output and runs `kubectl apply -f` on it; --dry_run
prints the manifest and the kubectl command instead. The manifest holds an Indexed
batch/v1 Job with one pod per node (completions = parallelism = --nodes) and a
headless Service of the same name, so pod 0 is reachable as <job>-0.<job>: every
pod gets MEDJAX_COORDINATOR_ADDRESS=<job>-0.<job>:<port> and
MEDJAX_NUM_PROCESSES=<nodes>, and medjax takes its process id from the
JOB_COMPLETION_INDEX that Kubernetes sets in each pod of an Indexed Job.
The image must hold this repository, installed, in its default folder or in the
folder that --workdir names (the container's working directory, not the run's: that
is the experiment's own --workdir, which every pod must see, e.g. a shared
volume). The pods run --python (default `python`, the image's: this machine's
interpreter path is not in the container); the manifest says so in a comment.
"""

import dataclasses
import json
import math
import os
import pathlib
import re

from absl import app
from absl import flags

from launch import common

FLAGS = flags.FLAGS
ACCELERATORS = ("gpu", "tpu")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_TOPOLOGY = re.compile(r"^[1-9]\d*(x[1-9]\d*)+$")
_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_./-]*$")
_YAML_WORDS = frozenset(("y", "n", "yes", "no", "true", "false", "on", "off", "null"))


@dataclasses.dataclass(frozen=True)
class K8sJob:
  """What to ask Kubernetes for; see _define_flags for the meaning of each field."""
  nodes: int = 1
  image: str = ""
  accelerator: str = "gpu"
  gpus_per_node: int = 8
  tpu_accelerator: str | None = None
  tpu_topology: str | None = None
  tpu_chips_per_node: int = 4
  job_name: str = "medjax"
  namespace: str = "default"
  workdir: str | None = None
  output: str = "workdirs/k8s"
  port: int = common.DEFAULT_PORT
  python: str = "python"

  def validate(self) -> None:
    """Raises app.UsageError naming the first bad flag."""
    common.check_positive("nodes", self.nodes)
    common.check_word("image", self.image)
    # Pods of an Indexed Job are named and host-named <job>-<index>: a DNS label.
    if not _DNS_LABEL.match(self.job_name) or len(f"{self.job_name}-{self.nodes}") > 63:
      raise app.UsageError(f"--job_name must be lower-case letters, digits and '-', "
                           f"short enough for <job>-<index> to fit 63, got {self.job_name!r}")
    if not _DNS_LABEL.match(self.namespace):
      raise app.UsageError(f"--namespace must be a DNS label, got {self.namespace!r}")
    common.check_positive("port", self.port)
    if self.accelerator == "gpu":
      common.check_positive("gpus_per_node", self.gpus_per_node)
      if self.tpu_accelerator or self.tpu_topology:
        raise app.UsageError("--tpu_accelerator/--tpu_topology need --accelerator=tpu")
    elif self.accelerator == "tpu":
      self._validate_tpu()
    else:
      raise app.UsageError(f"--accelerator must be one of {ACCELERATORS}, "
                           f"got {self.accelerator!r}")

  def _validate_tpu(self) -> None:
    common.check_word("tpu_accelerator", self.tpu_accelerator or "")
    if not _TOPOLOGY.match(self.tpu_topology or ""):
      raise app.UsageError(f"--tpu_topology must look like 4x4 or 2x2x4, "
                           f"got {self.tpu_topology!r}")
    common.check_positive("tpu_chips_per_node", self.tpu_chips_per_node)
    chips = math.prod(int(n) for n in self.tpu_topology.split("x"))
    if chips != self.nodes * self.tpu_chips_per_node:
      raise app.UsageError(
          f"--tpu_topology={self.tpu_topology} has {chips} chips, but --nodes={self.nodes} "
          f"x --tpu_chips_per_node={self.tpu_chips_per_node} = "
          f"{self.nodes * self.tpu_chips_per_node}")

  @property
  def coordinator_address(self) -> str:
    return f"{self.job_name}-0.{self.job_name}:{self.port}"

  @property
  def manifest_path(self) -> pathlib.Path:
    output = os.path.abspath(os.path.expanduser(self.output))
    return pathlib.Path(output) / f"{self.job_name}.yaml"


def service(job: K8sJob) -> dict:
  """Headless Service giving each pod the DNS name <job>-<index>.<job>."""
  return {
      "apiVersion": "v1", "kind": "Service",
      "metadata": {"name": job.job_name, "namespace": job.namespace},
      "spec": {
          "clusterIP": "None",
          "selector": {"job-name": job.job_name},
          "publishNotReadyAddresses": True,  # reachable before any readiness
          "ports": [{"name": "coordinator", "port": job.port}],
      },
  }


def container(job: K8sJob, experiment: common.Experiment) -> dict:
  """The one container of each pod: the experiment, its env and its accelerators."""
  if job.accelerator == "gpu":
    limits = {"nvidia.com/gpu": job.gpus_per_node}
  else:
    limits = {"google.com/tpu": job.tpu_chips_per_node}
  spec = {
      "name": "medjax", "image": job.image,
      "command": experiment.argv(job.python),
      "env": [
          {"name": "MEDJAX_COORDINATOR_ADDRESS", "value": job.coordinator_address},
          {"name": "MEDJAX_NUM_PROCESSES", "value": str(job.nodes)},
      ],
      "ports": [{"name": "coordinator", "containerPort": job.port}],
      "resources": {"limits": limits},
  }
  if job.workdir:
    spec["workingDir"] = job.workdir
  return spec


def indexed_job(job: K8sJob, experiment: common.Experiment) -> dict:
  """The Indexed Job: one pod per node; a failed pod fails (and stops) the whole job."""
  # On eviction the pods get SIGTERM; the experiment then saves a checkpoint (all
  # processes agree within 10 steps) and exits with code 75: allow time for that.
  pod = {"subdomain": job.job_name, "restartPolicy": "Never",
         "terminationGracePeriodSeconds": 300, "containers": [container(job, experiment)]}
  if job.accelerator == "tpu":
    pod["nodeSelector"] = {"cloud.google.com/gke-tpu-accelerator": job.tpu_accelerator,
                           "cloud.google.com/gke-tpu-topology": job.tpu_topology}
  return {
      "apiVersion": "batch/v1", "kind": "Job",
      "metadata": {"name": job.job_name, "namespace": job.namespace},
      "spec": {
          "completionMode": "Indexed",
          "completions": job.nodes, "parallelism": job.nodes, "backoffLimit": 0,
          "template": {"spec": pod},
      },
  }


def manifest(job: K8sJob, experiment: common.Experiment) -> list[dict]:
  """The Service and the Job, as Kubernetes objects."""
  job.validate()
  return [service(job), indexed_job(job, experiment)]


def _yaml_scalar(value) -> str:
  if isinstance(value, (dict, list)):  # only empty ones come here
    return "{}" if isinstance(value, dict) else "[]"
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, int):
    return str(value)
  return _yaml_str(str(value))


def _yaml_str(text: str) -> str:
  """text plain when YAML reads it back as that string, else double-quoted."""
  if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
    return text
  return json.dumps(text)  # so "2", "on" or "-m" stay strings


def _yaml_lines(value, indent: int):
  """Block-style YAML lines for dicts and lists of scalars, dicts and lists."""
  pad = " " * indent
  if isinstance(value, dict):
    for key, item in value.items():
      key = _yaml_str(key)
      if isinstance(item, (dict, list)) and item:
        yield f"{pad}{key}:"
        yield from _yaml_lines(item, indent + 2)
      else:
        yield f"{pad}{key}: {_yaml_scalar(item)}"
    return
  for item in value:
    if isinstance(item, (dict, list)) and item:
      lines = list(_yaml_lines(item, indent + 2))
      yield f"{pad}- {lines[0][indent + 2:]}"
      yield from lines[1:]
    else:
      yield f"{pad}- {_yaml_scalar(item)}"


def to_yaml(documents: list[dict]) -> str:
  """A multi-document YAML stream (PyYAML is not a dependency)."""
  return "".join("---\n" + "\n".join(_yaml_lines(doc, 0)) + "\n" for doc in documents)


def python_comment(job: K8sJob) -> str:
  """The manifest's `# python:` line: the image's interpreter, not this machine's."""
  why = ("--python" if job.python != K8sJob.python else
         "the image's own, not this launcher's interpreter, whose path is not in the "
         "container; --python to change")
  return common.python_comment(job.python, why)


def launch(job: K8sJob, experiment: common.Experiment, dry_run: bool) -> None:
  """Writes the manifest and runs `kubectl apply -f` on it (or prints both)."""
  text = python_comment(job) + "\n" + to_yaml(manifest(job, experiment))
  common.write_file(job.manifest_path, text, dry_run)
  common.run_commands([["kubectl", "apply", "-f", str(job.manifest_path)]], dry_run)


def _define_flags() -> None:
  flags.DEFINE_integer("nodes", 1, "Number of nodes (pods, one process each).")
  flags.DEFINE_string("image", None, "Container image holding medjax.", required=True)
  flags.DEFINE_enum("accelerator", "gpu", ACCELERATORS, "Kind of node.")
  flags.DEFINE_integer("gpus_per_node", 8, "gpu: GPUs per pod (nvidia.com/gpu).")
  flags.DEFINE_string("tpu_accelerator", None,
                      "tpu: GKE TPU type, e.g. tpu-v5-lite-podslice.")
  flags.DEFINE_string("tpu_topology", None, "tpu: slice topology, e.g. 4x4.")
  flags.DEFINE_integer("tpu_chips_per_node", 4, "tpu: chips per pod (google.com/tpu).")
  flags.DEFINE_string("job_name", "medjax", "Name of the Job and of its Service.")
  flags.DEFINE_string("namespace", "default", "Kubernetes namespace.")
  flags.DEFINE_string("workdir", None, "Working directory in the container "
                      "(default: the image's).")
  flags.DEFINE_string("output", "workdirs/k8s", "Folder for the manifest.")
  flags.DEFINE_integer("port", common.DEFAULT_PORT, "Coordinator port on pod 0.")
  flags.DEFINE_string("python", "python", "Python interpreter in the image.")
  flags.DEFINE_bool("dry_run", False, "Print the manifest and the kubectl command; "
                    "run nothing.")


def main(argv):
  experiment = common.parse_experiment(argv)
  job = common.from_flags(K8sJob)
  launch(job, experiment, FLAGS.dry_run)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
