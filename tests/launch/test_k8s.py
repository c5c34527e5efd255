"""Tests for launch/k8s.py: the Indexed Job + headless Service manifest and its YAML."""

import os

from absl import app
import pytest

from launch import common
from launch import k8s
from tests.launch.conftest import run_cli

SEG = common.Experiment("experiments.segmentation",
                        ("--config=experiments/configs/segmentation.py:lung_ct",
                         "--workdir=/shared/runs/lung"))
yaml = pytest.importorskip("yaml")


def _job(tmp_path, **kwargs):
  return k8s.K8sJob(**{"nodes": 2, "gpus_per_node": 8, "image": "ghcr.io/lab/medjax:1",
                       "job_name": "lung", "output": str(tmp_path), **kwargs})


def test_gpu_manifest_for_two_nodes(tmp_path):
  service, job = k8s.manifest(_job(tmp_path), SEG)
  assert service["kind"] == "Service" and service["metadata"]["name"] == "lung"
  assert service["spec"]["clusterIP"] == "None"
  assert service["spec"]["selector"] == {"job-name": "lung"}
  assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
  spec = job["spec"]
  assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 2, 2)
  pod = spec["template"]["spec"]
  assert pod["subdomain"] == "lung"  # pod 0 is lung-0.lung
  assert pod["terminationGracePeriodSeconds"] >= 60  # time to save on SIGTERM
  (container,) = pod["containers"]
  assert container["command"] == ["python", "-m", "experiments.segmentation", *SEG.args,
                                  "--distributed=on"]
  assert container["env"] == [
      {"name": "MEDJAX_COORDINATOR_ADDRESS", "value": "lung-0.lung:8476"},
      {"name": "MEDJAX_NUM_PROCESSES", "value": "2"}]
  assert container["resources"] == {"limits": {"nvidia.com/gpu": 8}}
  assert "nodeSelector" not in pod and "workingDir" not in container


def test_tpu_manifest(tmp_path):
  job = _job(tmp_path, nodes=4, accelerator="tpu", tpu_accelerator="tpu-v5-lite-podslice",
             tpu_topology="4x4", workdir="/app", namespace="research")
  service, indexed = k8s.manifest(job, SEG)
  pod = indexed["spec"]["template"]["spec"]
  assert pod["nodeSelector"] == {"cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
                                 "cloud.google.com/gke-tpu-topology": "4x4"}
  assert pod["containers"][0]["resources"] == {"limits": {"google.com/tpu": 4}}
  assert pod["containers"][0]["workingDir"] == "/app"
  assert service["metadata"]["namespace"] == indexed["metadata"]["namespace"] == "research"


def test_yaml_reads_back_as_the_manifest(tmp_path):
  tricky = ("on", "2", "-m", "a: b # c", "it's \"q\"", "", "ü", "null", "x\ny")
  docs = k8s.manifest(_job(tmp_path), common.Experiment("experiments.ehr", tricky))
  docs.append({"empty": {}, "none": [], "nested": [[1, {"a": True}], {"on": "off"}]})
  assert list(yaml.safe_load_all(k8s.to_yaml(docs))) == docs


def test_dry_run_prints_manifest_and_kubectl(tmp_path, no_subprocess, capsys):
  job = _job(tmp_path / "out")
  k8s.launch(job, SEG, dry_run=True)
  note, *manifest, command = capsys.readouterr().out.splitlines()
  assert note == ("# python: python (the image's own, not this launcher's interpreter, whose "
                  "path is not in the container; --python to change)")
  assert command == f"kubectl apply -f {tmp_path}/out/lung.yaml"
  assert list(yaml.safe_load_all("\n".join(manifest))) == k8s.manifest(job, SEG)
  assert not os.path.exists(tmp_path / "out")


def test_python_flag_names_the_image_interpreter(tmp_path, no_subprocess, capsys):
  job = _job(tmp_path, python="/usr/bin/python3.12")
  k8s.launch(job, SEG, dry_run=True)
  note, *manifest, _ = capsys.readouterr().out.splitlines()
  assert note == "# python: /usr/bin/python3.12 (--python)"
  (_, indexed) = yaml.safe_load_all("\n".join(manifest))
  assert indexed["spec"]["template"]["spec"]["containers"][0]["command"][0] == (
      "/usr/bin/python3.12")


def test_launch_writes_manifest_and_applies_it(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(k8s.common.subprocess, "run", lambda cmd, **kw: calls.append(cmd))
  job = _job(tmp_path)
  k8s.launch(job, SEG, dry_run=False)
  assert calls == [["kubectl", "apply", "-f", str(tmp_path / "lung.yaml")]]
  assert list(yaml.safe_load_all(job.manifest_path.read_text())) == k8s.manifest(job, SEG)


@pytest.mark.parametrize("kwargs, flag", [
    ({"nodes": 0}, "--nodes"), ({"gpus_per_node": 0}, "--gpus_per_node"),
    ({"job_name": "Lung_CT"}, "--job_name"), ({"namespace": "My NS"}, "--namespace"),
    ({"image": ""}, "--image"), ({"accelerator": "fpga"}, "--accelerator"),
    ({"tpu_topology": "4x4"}, "--accelerator=tpu"),
    ({"accelerator": "tpu", "tpu_topology": "4x4"}, "--tpu_accelerator"),
    ({"accelerator": "tpu", "tpu_accelerator": "v5e"}, "--tpu_topology must look like"),
    ({"accelerator": "tpu", "tpu_accelerator": "v5e", "tpu_topology": "4x4"},
     "--tpu_topology=4x4 has 16 chips, but --nodes=2")])
def test_bad_flags_name_the_flag(tmp_path, kwargs, flag):
  with pytest.raises(app.UsageError, match=flag):
    k8s.manifest(_job(tmp_path, **kwargs), SEG)


def test_cli_dry_run_runs_nothing(tmp_path, fake_tools):
  bin_dir, log = fake_tools
  out = tmp_path / "out"
  result = run_cli("launch.k8s", ["--nodes=2", "--image=ghcr.io/lab/medjax:1", "--job_name=lung",
                                  f"--output={out}", "--dry_run", "--", SEG.module, *SEG.args],
                   bin_dir)
  assert result.returncode == 0, result.stderr
  *manifest, command = result.stdout.splitlines()
  assert list(yaml.safe_load_all("\n".join(manifest))) == k8s.manifest(_job(out), SEG)
  assert command == f"kubectl apply -f {out}/lung.yaml"
  assert not log.exists() and not out.exists()


def test_cli_rejects_bad_nodes(fake_tools):
  bin_dir, log = fake_tools
  result = run_cli("launch.k8s", ["--nodes=0", "--image=i", "--dry_run", "--", SEG.module],
                   bin_dir)
  assert result.returncode == 1 and "--nodes must be at least 1" in result.stderr
  assert not log.exists()
