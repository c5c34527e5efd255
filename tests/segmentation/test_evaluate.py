"""Probability maps and `--mode=evaluate` on a labelled folder, against sklearn.

A known "model" (foreground logit 8 * (windowed image - 0.5)) stands in for a
trained one, so the expected probabilities are computed here by hand; the slow
test at the end runs the real commands on a 2-step training.
"""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

from experiments.configs import segmentation as seg_configs
from medjax.engine import restore
from medjax.engine.errors import InputError
from medjax.segmentation import evaluate
from medjax.segmentation import fov
from medjax.segmentation import predict
from medjax.segmentation import task as task_lib
from tests.segmentation.data import raw_fixtures

LOW, HIGH = -1000.0, 400.0  # the quick preset's HU window


def _model(batch):
  x = batch["image"][..., :1]
  return np.concatenate([np.zeros_like(x), 8.0 * (x - 0.5)], -1)


def _expected_probability(raw):
  windowed = np.clip((raw.astype(np.float64) - LOW) / (HIGH - LOW), 0, 1)
  return 1.0 / (1.0 + np.exp(-8.0 * (windowed - 0.5)))


@pytest.fixture(name="task")
def _task():
  config = seg_configs.get_config("quick")
  config.task.hd95 = False
  return task_lib.SegmentationTask(config.task)


def _write_folder(root, sizes=((30, 34), (28, 28), (32, 20)), seed=0):
  """images/*.tif int16, labels/*_mask.png {0, 255}, fov/*_mask.png; returns arrays."""
  rng = np.random.default_rng(seed)
  data = {}
  for i, size in enumerate(sizes):
    raw = rng.integers(-1200, 600, size).astype(np.int16)
    label = (rng.random(size) < 0.4).astype(np.uint8)
    valid = np.zeros(size, np.uint8)
    valid[2:-2, 3:] = 1
    raw_fixtures.write_tif(os.path.join(root, "images", f"im{i}.tif"), raw)
    raw_fixtures.write_pil(os.path.join(root, "labels", f"im{i}_mask.png"), label * 255)
    raw_fixtures.write_pil(os.path.join(root, "fov", f"im{i}_mask.png"), valid * 255)
    data[f"im{i}"] = (raw, label, valid > 0)
  return data


def test_probability_png_and_npy_hold_the_model_probability(task, tmp_path):
  raw = np.random.default_rng(1).integers(-1200, 600, (30, 34)).astype(np.int16)
  probs = predict.Predictor(task, _model, str(tmp_path))(raw)
  want = _expected_probability(raw)
  np.testing.assert_allclose(probs[..., 1], want, atol=1e-6)
  png, = predict.write_probabilities(probs, "a", str(tmp_path), "png16")
  with Image.open(png) as im:
    stored = np.asarray(im)
  assert os.path.basename(png) == "a_prob.png" and stored.dtype == np.uint16
  assert np.abs(stored.astype(np.int64) - np.round(want * 65535)).max() <= 1
  assert np.abs(predict.read_png16(png) - want).max() <= 1.5 / 65535
  npy, = predict.write_probabilities(probs, "a", str(tmp_path), "npy")
  loaded = np.load(npy)
  assert loaded.dtype == np.float32 and loaded.shape == (30, 34)
  np.testing.assert_allclose(loaded, want, atol=1e-6)
  assert predict.write_probabilities(probs, "a", str(tmp_path), "none") == []


def test_multiclass_png_maps_are_one_per_foreground_class(tmp_path):
  probs = np.random.default_rng(0).dirichlet(np.ones(3), (6, 5)).astype(np.float32)
  paths = predict.write_probabilities(probs, "b", str(tmp_path), "png16")
  assert [os.path.basename(p) for p in paths] == ["b_prob_class1.png", "b_prob_class2.png"]
  for k, path in enumerate(paths, start=1):
    assert np.abs(predict.read_png16(path) - probs[..., k]).max() <= 1.5 / 65535


def test_unknown_probability_format_names_the_flag():
  with pytest.raises(InputError, match="--probabilities=png8"):
    predict.check_format("png8")


def test_evaluate_metrics_equal_sklearn_inside_the_fov(task, tmp_path, monkeypatch):
  data = _write_folder(tmp_path)
  monkeypatch.setattr(restore, "load_for_prediction", lambda *a, **k: (None, _model))
  metrics = evaluate.evaluate_folder(None, str(tmp_path), task, str(tmp_path / "images"),
                                     str(tmp_path / "labels"), str(tmp_path / "out"),
                                     fov_dir=str(tmp_path / "fov"))
  labels = np.concatenate([l[v] for _, l, v in data.values()])
  probs = np.concatenate([_expected_probability(r)[v] for r, _, v in data.values()])
  pred = (probs > 0.5).astype(int)
  assert metrics["pooled_f1"] == pytest.approx(skm.f1_score(labels, pred), abs=1e-12)
  assert metrics["pooled_sensitivity"] == pytest.approx(skm.recall_score(labels, pred))
  assert metrics["pooled_specificity"] == pytest.approx(skm.recall_score(1 - labels, 1 - pred))
  assert metrics["pooled_accuracy"] == pytest.approx(skm.accuracy_score(labels, pred))
  assert metrics["pixel_auc"] == pytest.approx(skm.roc_auc_score(labels, probs), abs=1e-3)
  with open(tmp_path / "out" / "per_image.csv", encoding="utf-8") as f:
    rows = {row["id"]: row for row in csv.DictReader(f)}
  for ident, (raw, label, valid) in data.items():
    p = _expected_probability(raw)[valid]
    assert float(rows[ident]["dice"]) == pytest.approx(skm.f1_score(label[valid], p > 0.5))
    assert float(rows[ident]["pixel_auc"]) == pytest.approx(skm.roc_auc_score(label[valid], p))
    assert int(rows[ident]["valid_pixels"]) == valid.sum()
  saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
  assert saved["metrics"]["pooled_f1"] == pytest.approx(metrics["pooled_f1"])
  assert saved["metrics"]["num_images"] == 3


def test_drive_names_pair_images_with_manual_and_fov_masks(tmp_path):
  raw_fixtures.write_drive(tmp_path, train_ids=(21, 22), test_ids=())
  folder = tmp_path / "training"
  pairs = evaluate.pair_folder(str(folder / "images"), str(folder / "1st_manual"),
                               str(folder / "mask"))
  assert [(os.path.basename(p.mask), os.path.basename(p.valid)) for p in pairs] == [
      ("21_manual1.gif", "21_training_mask.gif"), ("22_manual1.gif", "22_training_mask.gif")]


def _evaluate(task, root):
  evaluate.evaluate_folder(None, str(root), task, str(root / "images"), str(root / "labels"),
                           str(root / "out"), fov_dir=str(root / "fov"))


@pytest.mark.parametrize("damage,named", [
    ("missing", "im1.tif"),  # the image without a mask, and where it was looked for
    ("size", "im1_mask.png"),
    ("unreadable", "im2_mask.png"),
    ("class", "im0_mask.png"),
])
def test_bad_label_folders_name_the_file(damage, named, task, tmp_path, monkeypatch):
  _write_folder(tmp_path)
  labels = tmp_path / "labels"
  if damage == "missing":
    os.remove(labels / "im1_mask.png")
  elif damage == "size":
    raw_fixtures.write_pil(str(labels / "im1_mask.png"), np.zeros((5, 5), np.uint8))
  elif damage == "unreadable":
    (labels / "im2_mask.png").write_bytes(b"not a png")
  else:
    raw_fixtures.write_pil(str(labels / "im0_mask.png"), np.full((30, 34), 3, np.uint8))
  monkeypatch.setattr(restore, "load_for_prediction", lambda *a, **k: (None, _model))
  with pytest.raises(InputError, match=named):
    _evaluate(task, tmp_path)


def test_fov_scale_feeds_the_model_the_training_diameter(task, tmp_path):
  seen = []

  def model(batch):
    seen.append(batch["image"].shape)
    return _model(batch)

  task.config.fov_scale.enabled = True
  task.config.fov_scale.train_diameter = 20.0
  y, x = np.ogrid[:60, :80]
  fov_mask = ((y - 30) ** 2 + (x - 40) ** 2 <= 20 ** 2).astype(np.uint8)  # diameter 41
  raw = np.where(fov_mask > 0, 300, -1000).astype(np.int16)
  probs = predict.Predictor(task, model, str(tmp_path))(raw, fov_mask)
  assert seen == [(1, *fov.scaled_shape((60, 80), 41, 20.0), 1)] == [(1, 29, 39, 1)]
  assert probs.shape == (60, 80, 2)
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
  inside = _expected_probability(np.int16(300))
  assert probs[30, 40, 1] == pytest.approx(inside, abs=1e-5)  # far from the FOV edge


@pytest.mark.slow  # two subprocesses and a 2-step training: ~1-2 min on 2 CPU cores
def test_predict_and_evaluate_commands_on_a_trained_workdir(tmp_path):
  work, data = tmp_path / "work", _write_folder(tmp_path / "folder", sizes=((32, 32),) * 2)
  base = [sys.executable, "-m", "experiments.segmentation",
          "--config=experiments/configs/segmentation.py:quick", f"--workdir={work}"]
  train = [f"--config.task.data_dir={tmp_path / 'prepared'}", "--config.total_steps=2",
           "--config.task.builder.num_train=8", "--config.task.builder.num_val=4",
           "--config.task.builder.size=32", "--config.task.model.features=(4, 8)",
           "--config.batch_size=8", "--config.task.hd95=False"]  # 8 test devices
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

  def run(args):
    result = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout

  run(base + train)
  assert json.loads((work / fov.PREPROCESSING_FILE).read_text())["fov_diameter"] > 0
  folder = tmp_path / "folder"
  run(base + ["--mode=predict", f"--input_dir={folder / 'images'}",
               f"--output_dir={tmp_path / 'pred'}", "--probabilities=png16"])
  out = run(base + ["--mode=evaluate", f"--input_dir={folder / 'images'}",
                    f"--label_dir={folder / 'labels'}", f"--fov_dir={folder / 'fov'}",
                    f"--output_dir={tmp_path / 'eval'}"])
  assert "evaluate metrics:" in out and "pooled_f1=" in out
  prob = predict.read_png16(str(tmp_path / "pred" / "im0_prob.png"))
  mask = np.asarray(Image.open(tmp_path / "pred" / "im0.png")) > 0
  np.testing.assert_array_equal(mask, prob > 0.5)  # the argmax of the same probabilities
  with open(tmp_path / "eval" / "per_image.csv", encoding="utf-8") as f:
    rows = {row["id"]: row for row in csv.DictReader(f)}
  _, label, valid = data["im0"]
  assert float(rows["im0"]["dice"]) == pytest.approx(
      skm.f1_score(label[valid], mask[valid]), abs=1e-3)  # from 16-bit rounded maps
