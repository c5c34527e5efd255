"""Two processes x 4 CPU devices train exactly like one process x 8 devices.

Runs the segmentation `quick` preset (and the EHR one) for a few steps both ways, as real separate
processes (jax.distributed over localhost, gloo CPU collectives) started by
`launch.local`, and compares the logged loss of every step and the final
evaluation. Only float reduction order may differ.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[2]
_COMMON = ["--config.total_steps=6", "--config.log_every=1", "--config.eval_every=0",
           "--config.checkpoint_every=3"]
_EXPERIMENTS = {
    "segmentation": (["experiments.segmentation",
                      "--config=experiments/configs/segmentation.py:quick", *_COMMON,
                      "--config.task.builder.num_train=64", "--config.task.builder.num_val=12"],
                     ("val/num_images", 12),
                     ("val/dice", "val/pooled_dice", "val/pixel_auc", "val/accuracy")),
    "ehr": (["experiments.ehr", "--config=experiments/configs/ehr.py:quick", *_COMMON,
             "--config.task.synthetic_stays=120"],
            ("test/count", 24), ("test/auroc", "test/auprc", "val/auroc", "test/brier")),
}

def _run(args, workdir, env):
  result = subprocess.run([sys.executable, "-m", *args, f"--workdir={workdir}"], cwd=_ROOT,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  losses = [json.loads(line) for line in open(workdir / "metrics.jsonl", encoding="utf-8")]
  losses = {r["step"]: r["train/loss"] for r in losses if "train/loss" in r}
  summary = json.loads((workdir / "metrics.json").read_text())
  # The test split (final_only) is evaluated once, on the selected checkpoint.
  final = {**summary["last"], **summary.get("best", {})}
  return losses, final


@pytest.mark.slow  # end-to-end: run with -m slow (the default run stays under 10 min)
@pytest.mark.parametrize("name", sorted(_EXPERIMENTS))
def test_two_processes_match_one(tmp_path, name):
  experiment, (count_key, count), metrics = _EXPERIMENTS[name]
  env = {k: v for k, v in os.environ.items() if not k.startswith("MEDJAX_") or
         k == "MEDJAX_SHARED_DATA"}
  env.update(MEDJAX_DATA_DIR=str(tmp_path / "data"), JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=8")
  one_losses, one_final = _run(experiment, tmp_path / "one", env)
  launcher = ["launch.local", "--num_processes=2", "--cpu_devices_per_process=4", "--"]
  two_losses, two_final = _run(launcher + experiment, tmp_path / "two", env)

  assert sorted(one_losses) == sorted(two_losses) == list(range(1, 7))
  one, two = (np.array([d[s] for s in range(1, 7)]) for d in (one_losses, two_losses))
  np.testing.assert_allclose(two, one, rtol=1e-4)
  assert np.ptp(one) > 1e-4  # the loss moved: the comparison is not of constants
  assert two_final[count_key] == one_final[count_key] == count  # each example once
  for metric in metrics:
    np.testing.assert_allclose(two_final[metric], one_final[metric], rtol=1e-3,
                               err_msg=metric)
  # Every process wrote its part of the checkpoints; only process 0 the metrics.
  assert (tmp_path / "two" / "checkpoints" / "6").is_dir()


@pytest.mark.slow
def test_two_processes_agree_on_skipping_a_corrupt_checkpoint(tmp_path):
  experiment, _, _ = _EXPERIMENTS["ehr"]
  env = {k: v for k, v in os.environ.items() if not k.startswith("MEDJAX_")}
  env.update(MEDJAX_DATA_DIR=str(tmp_path / "data"), JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=8")
  launcher = ["launch.local", "--num_processes=2", "--cpu_devices_per_process=4", "--"]
  workdir = tmp_path / "two"
  first, _ = _run(launcher + experiment, workdir, env)
  os.remove(workdir / "checkpoints" / "6" / "state" / "manifest.ocdbt")
  again, _ = _run(launcher + experiment, workdir, env)  # resumes from step 3
  assert again == first  # steps 4-6 ran again, to the same losses
  rows = [json.loads(line) for line in open(workdir / "metrics.jsonl", encoding="utf-8")]
  assert [r["step"] for r in rows if "train/loss" in r] == list(range(1, 7))  # each once
  assert (workdir / "checkpoints_corrupt" / "6-0" / "state").is_dir()
  assert (workdir / "checkpoints" / "6" / "state" / "manifest.ocdbt").exists()
