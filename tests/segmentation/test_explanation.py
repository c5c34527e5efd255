"""segmentation.explanation: crops and regions by hand; --mode=explain end to end (slow)."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import segmentation as seg_configs
from medjax.explain import mode
from medjax.segmentation import explanation


def test_crop_is_centred_on_the_class_and_marks_padding_invalid():
  label = np.zeros((10, 12), np.int32)
  label[1:4, 8:11] = 2  # centroid (2, 9)
  label[7, 1] = 1
  image = np.arange(120, dtype=np.float32).reshape(10, 12, 1)
  valid = np.ones((10, 12), np.float32)
  valid[2, 9] = 0
  out = explanation.crop({"image": image, "label": label, "valid": valid}, (6, 6), True, 2)
  # Corner (2 - 3, 9 - 3) = (-1, 6): row -1 is padding, rows 0..4 and columns 6..11 inside.
  np.testing.assert_array_equal(out["image"][1:, :, 0], image[0:5, 6:12, 0])
  np.testing.assert_array_equal(out["label"][1:], label[0:5, 6:12])
  want = np.zeros((6, 6), np.float32)
  want[1:] = valid[0:5, 6:12]
  np.testing.assert_array_equal(out["valid"], want)
  assert out["valid"][0].sum() == 0 and out["valid"][3, 3] == 0  # padding, invalid pixel
  no_class_2 = np.where(label == 1, 1, 0)
  np.testing.assert_array_equal(explanation.region_centre(no_class_2, 2), [7, 1])  # any class
  np.testing.assert_array_equal(explanation.region_centre(np.zeros((4, 6)), 1), [2, 3])


def test_regions_fall_back_from_prediction_to_label_to_image():
  predicted = np.array([[[1, 0], [0, 0]], [[0, 0], [0, 0]], [[0, 0], [0, 0]]])
  label = np.array([[[0, 0], [0, 0]], [[0, 1], [1, 0]], [[0, 0], [0, 0]]])
  valid = np.ones((3, 2, 2))
  valid[1, 1, 0] = 0
  masks, kinds = explanation.regions(predicted, label, valid, 1)
  assert kinds == ["predicted", "label", "image"]
  np.testing.assert_array_equal(masks, [[[1, 0], [0, 0]], [[0, 1], [0, 0]], [[1, 1], [1, 1]]])


def test_mean_probability_over_the_region():
  logits = np.random.default_rng(0).normal(size=(2, 3, 3, 3)).astype(np.float32)
  mask = np.zeros((2, 3, 3), np.float32)
  mask[0, 0, :2] = mask[1, 2, 2] = 1
  p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  got = explanation.mean_probability(2, mask)(jnp.asarray(logits))
  np.testing.assert_allclose(got, [p[0, 0, :2, 2].mean(), p[1, 2, 2, 2]], rtol=1e-5)


def test_crop_size_patch_window_or_whole_images():
  t = seg_configs.get_config("quick").task
  assert explanation.crop_size(t, [(30, 20), (24, 28)]) == ((30, 28), False)
  t.sliding_window.roi = (16, 16)
  assert explanation.crop_size(t, [(30, 20)]) == ((16, 16), True)
  t.spatial_dims, t.patch_size = 3, (8, 8, 4)
  assert explanation.crop_size(t, [(30, 20, 9)]) == ((8, 8, 4), True)


# ------------------------------------------------------------------ end to end (slow)


def _tiny(tmp_path, preset):
  config = seg_configs.get_config(preset)
  t = config.task
  t.data_dir = str(tmp_path / "prepared")
  t.model.features = (4, 8)
  t.eval_batch_size = 4
  t.report_images = 0
  config.batch_size, config.total_steps, config.eval_every = 8, 3, 0
  config.async_checkpoints = False
  if preset == "quick3d":
    t.model.norm = "batch"  # instance norm: IG's zero baseline is ill-conditioned (see module)
    t.patch_size = (8, 8, 8)
    t.volume.val_fraction, t.volume.figures = 0.5, False
    t.builder.update(num_cases=4, shape=(12, 14, 10))  # 2 validation cases
  else:
    t.builder.update(num_train=8, num_val=4, size=32)
  config.explain.update(examples=2, ig_steps=32, faithfulness_steps=4, random_seeds=2)
  return config


@pytest.fixture(scope="module", params=["quick", "quick3d"])
def trained(request, tmp_path_factory):
  from medjax.engine import train  # pylint: disable=import-outside-toplevel
  from medjax.segmentation import task as task_lib  # pylint: disable=import-outside-toplevel
  tmp_path = tmp_path_factory.mktemp(request.param)
  config = _tiny(tmp_path, request.param)
  task = task_lib.make_task(config.task)
  task.prepare()
  os.makedirs(tmp_path / "work")
  task.write_run_files(str(tmp_path / "work"))
  train.train_and_evaluate(config, str(tmp_path / "work"), task)
  return config, str(tmp_path / "work"), task


@pytest.mark.slow  # a 3-step training and every check compiled: ~1-2 min on 2 CPU cores
def test_explain_run_writes_the_checks_of_the_predicted_region(trained):
  from medjax.engine import restore  # pylint: disable=import-outside-toplevel
  config, workdir, task = trained
  results = explanation.explain_run(config, workdir, task)
  out = os.path.join(workdir, mode.OUT_DIR)
  checks = json.load(open(os.path.join(out, mode.CHECKS_FILE), encoding="utf-8"))
  for key in ("integrated_gradients_completeness", "randomisation", "faithfulness",
              "region", "region_size", "files"):
    assert key in checks
  assert all(os.path.exists(os.path.join(out, f)) for f in checks["files"])
  figures = [f for f in checks["files"] if f.startswith("integrated_gradients")]
  assert checks["examples"] == 2
  assert len(figures) == (1 if task.config.spatial_dims == 2 else 2)  # 3D: one per example
  assert results["ig_relative_gap"] < 0.05
  # The region is the engine's own prediction (restored independently) of class 1.
  saved = np.load(os.path.join(out, "attributions.npz"))
  _, predict = restore.load_for_prediction(config, workdir, task)
  predicted = np.asarray(predict({"image": saved["image"]})).argmax(-1)
  np.testing.assert_array_equal(saved["predicted"], predicted)
  for k, kind in enumerate(checks["region"]):
    if kind == "predicted":
      want = (predicted[k] == 1) & (saved["valid"][k] > 0)
      np.testing.assert_array_equal(saved["region"][k], want)
  # IG multiplies by (x - 0): zero wherever the input is zero (CT air, padding).
  zero = saved["image"] == 0
  assert zero.any() or task.config.spatial_dims == 3
  assert np.all(saved["attributions"][zero] == 0)
