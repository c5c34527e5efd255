"""experiments/bench/fundus_transfer.py: the resampled DRIVE-layout folders and the table."""

import json
import os

import numpy as np
from PIL import Image
import pytest

from experiments.bench import fundus_transfer
from medjax.engine.errors import InputError


def _drive_layout(root, ids, shape=(30, 20)):
  rng = np.random.default_rng(0)
  for folder in ("images", "1st_manual", "mask"):
    os.makedirs(os.path.join(root, "training", folder))
  for i in ids:
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    vessels = (rng.random(shape) > 0.8).astype(np.uint8) * 255
    fov = np.zeros(shape, np.uint8)
    fov[5:25, 3:17] = 255
    Image.fromarray(image).save(os.path.join(root, "training", "images", f"{i}_training.tif"))
    Image.fromarray(vessels).save(os.path.join(root, "training", "1st_manual", f"{i}_manual1.gif"))
    Image.fromarray(fov).save(os.path.join(root, "training", "mask", f"{i}_training_mask.gif"))


def test_resample_folder_scales_every_file_and_keeps_masks_binary(tmp_path):
  _drive_layout(tmp_path / "drive", ["37", "38"])
  out = fundus_transfer.resample_folder(str(tmp_path / "drive"), ["37", "38"], 1.5,
                                        str(tmp_path / "s"))
  image = np.asarray(Image.open(os.path.join(out, "images", "37_training.png")))
  vessels = np.asarray(Image.open(os.path.join(out, "1st_manual", "38_manual1.png")))
  fov = np.asarray(Image.open(os.path.join(out, "mask", "38_training_mask.png")))
  assert image.shape == (45, 30, 3) and vessels.shape == fov.shape == (45, 30)
  assert set(np.unique(vessels)) <= {0, 255} and set(np.unique(fov)) == {0, 255}
  # Nearest resampling of the FOV box [5, 25) x [3, 17) by 1.5: rows ~[7.5, 37.5).
  rows = np.flatnonzero(fov.any(axis=1))
  assert abs(rows[0] - 7.5) <= 1 and abs(rows[-1] + 1 - 37.5) <= 1


def test_scale_one_copies_the_pixels(tmp_path):
  _drive_layout(tmp_path / "drive", ["40"])
  out = fundus_transfer.resample_folder(str(tmp_path / "drive"), ["40"], 1.0, str(tmp_path / "s"))
  original = np.asarray(Image.open(tmp_path / "drive" / "training" / "images" / "40_training.tif"))
  copied = np.asarray(Image.open(os.path.join(out, "images", "40_training.png")))
  np.testing.assert_array_equal(original, copied)


def test_missing_image_names_the_file(tmp_path):
  _drive_layout(tmp_path / "drive", ["37"])
  with pytest.raises(InputError, match="39_training.tif"):
    fundus_transfer.resample_folder(str(tmp_path / "drive"), ["37", "39"], 2.0,
                                    str(tmp_path / "s"))


def test_evaluate_command_adds_each_arms_overrides():
  command = fundus_transfer.evaluate_command("W", "F", "fov_tta", "C")
  assert "--config=C" in command and "--mode=evaluate" in command
  assert "--fov_dir=F/mask" in command
  assert "--config.task.fov_scale.enabled=True" in command
  assert "--config.task.tta_flips=True" in command
  plain = fundus_transfer.evaluate_command("W", "F", "plain", "C")
  assert "--config.task.fov_scale.enabled=False" in plain
  assert "--config.task.tta_flips=False" in plain  # not the drive preset's default


def test_table_has_a_row_per_scale():
  metrics = dict(pooled_f1=0.8, pixel_auc=0.97, pooled_sensitivity=0.75, pooled_specificity=0.99)
  text = fundus_transfer.table({"1": {"plain": metrics}, "1.5": {"plain": metrics}})
  assert text.splitlines()[2] == "| 1 | 0.800 / 0.970 / 0.750 |"
  assert len(text.splitlines()) == 4


def test_run_arm_reuses_only_the_same_workdirs_results(tmp_path, monkeypatch):
  calls = []

  def fake_run(command, check):
    del check
    calls.append(command)
    workdir = next(c for c in command if c.startswith("--workdir=")).split("=", 1)[1]
    out = next(c for c in command if c.startswith("--output_dir=")).split("=", 1)[1]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "metrics.json"), "w", encoding="utf-8") as f:
      json.dump({"metrics": {"pooled_f1": len(workdir) / 10}, "workdir": workdir}, f)

  monkeypatch.setattr(fundus_transfer.subprocess, "run", fake_run)
  folder = str(tmp_path)
  assert fundus_transfer.run_arm("W1", folder, "fov", "C") == {"pooled_f1": 0.2}
  assert fundus_transfer.run_arm("W1", folder, "fov", "C") == {"pooled_f1": 0.2}
  assert len(calls) == 1  # resumed
  assert fundus_transfer.run_arm("W22", folder, "fov", "C") == {"pooled_f1": 0.3}
  assert len(calls) == 2  # another model's metrics were not reused
