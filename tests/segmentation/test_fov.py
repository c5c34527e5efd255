"""FOV diameter, scale resampling, CLAHE and flip averaging for camera transfer."""

import importlib.util
import json

import ml_collections
import numpy as np
import pytest

from experiments.configs import segmentation as seg_configs
from medjax.engine.errors import InputError
from medjax.segmentation import contrast
from medjax.segmentation import fov
from medjax.segmentation import task as task_lib


def _disc(shape, centre, radius):
  y, x = np.ogrid[:shape[0], :shape[1]]
  return (y - centre[0]) ** 2 + (x - centre[1]) ** 2 <= radius ** 2


def test_diameter_of_a_disc_is_its_width_in_columns():
  mask = _disc((64, 80), (32, 40), 20)  # columns 20..60: 2 * 20 + 1
  assert fov.fov_diameter(mask) == 41
  mask[0, 0] = mask[63, 79] = True  # stray pixels are not the largest region
  assert fov.fov_diameter(mask) == 41
  cut = _disc((30, 80), (15, 40), 20)  # cut at top and bottom by the sensor
  assert fov.fov_diameter(cut) == 41
  assert fov.fov_diameter(np.zeros((5, 5))) == 0


def test_diameter_is_estimated_by_thresholding_when_there_is_no_fov_mask():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 6, (64, 80, 3)).astype(np.uint8)  # near-black background
  disc = _disc((64, 80), (30, 45), 15)
  image[disc] = rng.integers(80, 200, (disc.sum(), 3))
  assert fov.diameter_of(image, None) == 31
  assert fov.diameter_of(image, np.ones((64, 80), np.uint8)) == 31  # all valid: no FOV
  assert fov.diameter_of(image, _disc((64, 80), (30, 45), 10)) == 21  # the mask wins


def test_resampling_to_another_scale_and_back_gives_the_input_size():
  image = np.random.default_rng(0).integers(0, 256, (37, 53, 3)).astype(np.uint8)
  small = fov.scaled_shape(image.shape, diameter=41, target=27)
  assert small == (round(37 * 27 / 41), round(53 * 27 / 41))
  back = fov.resize(fov.resize(image, small), image.shape[:2])
  assert back.shape == image.shape and back.dtype == np.float32
  constant = np.full((37, 53), 7.5, np.float32)
  np.testing.assert_allclose(fov.resize(fov.resize(constant, (90, 11)), (37, 53)), 7.5)
  mask = (image[..., 0] > 128).astype(np.uint8)
  nearest = fov.resize(mask, (74, 106), order=0)  # x2 nearest: each pixel a 2x2 block
  assert nearest.dtype == np.uint8
  np.testing.assert_array_equal(nearest, np.kron(mask, np.ones((2, 2), np.uint8)))


def test_training_diameter_is_recorded_and_read_back(tmp_path):
  source = [{"image": np.zeros((64, 80, 1)), "valid": _disc((64, 80), (32, 40), r)}
            for r in (10, 20, 30)]
  record = fov.training_diameter(source)
  assert record == {"fov_diameter": 41.0, "num_measured": 3}  # median of 21, 41, 61
  fov.write_preprocessing(str(tmp_path), record)
  config = ml_collections.ConfigDict(dict(train_diameter=0.0))
  assert fov.target_diameter(config, str(tmp_path)) == 41.0
  config.train_diameter = 540.0
  assert fov.target_diameter(config, str(tmp_path)) == 540.0


def test_missing_training_diameter_names_the_file_and_the_override(tmp_path):
  config = ml_collections.ConfigDict(dict(train_diameter=0.0))
  with pytest.raises(InputError, match="preprocessing.json.*train_diameter"):
    fov.target_diameter(config, str(tmp_path))
  (tmp_path / fov.PREPROCESSING_FILE).write_text("{not json")
  with pytest.raises(InputError, match="preprocessing.json"):
    fov.target_diameter(config, str(tmp_path))


def _skimage_missing():
  return importlib.util.find_spec("skimage") is None


@pytest.mark.skipif(not _skimage_missing(), reason="scikit-image is installed")
def test_clahe_without_scikit_image_is_a_clear_error_at_task_construction():
  config = seg_configs.get_config("quick")
  config.task.clahe.enabled = True
  with pytest.raises(InputError, match="scikit-image"):
    task_lib.make_preprocess(config.task)


@pytest.mark.skipif(_skimage_missing(), reason="needs scikit-image")
def test_clahe_is_skimage_equalize_adapthist_per_channel():
  from skimage import exposure  # pylint: disable=import-outside-toplevel
  config = seg_configs.get_config("drive")
  config.task.clahe.enabled = True
  image = np.random.default_rng(0).integers(0, 256, (40, 36, 3)).astype(np.uint8)
  example = {"image": image, "mask": np.zeros((40, 36), np.uint8),
             "valid": np.ones((40, 36), np.uint8)}
  out = task_lib.make_preprocess(config.task)(example)["image"]
  want = exposure.equalize_adapthist(image[..., 1] / 255.0, clip_limit=0.01)
  np.testing.assert_allclose(out[..., 0], want, atol=1e-6)
  np.testing.assert_array_equal(task_lib.make_preprocess(config.task)(example)["image"], out)


def test_clahe_runs_once_per_distinct_image(monkeypatch):
  calls = []
  monkeypatch.setattr(contrast, "require_skimage", lambda: None)
  monkeypatch.setattr(contrast, "clahe", lambda image, **kw: calls.append(1) or image + 1)
  clahe_config = ml_collections.ConfigDict(dict(enabled=True, clip_limit=0.01, kernel_size=0))
  preprocess = contrast.with_clahe(lambda ex: {"image": ex["image"] / 2}, clahe_config)
  a, b = np.zeros((4, 5, 1)), np.ones((4, 5, 1))
  outputs = [preprocess({"image": x})["image"] for x in (a, b, a, b)]
  assert len(calls) == 2  # each image equalised once, then served from the cache
  for out, x in zip(outputs, (a, b, a, b)):
    np.testing.assert_array_equal(out, x / 2 + 1)


def test_clahe_disabled_leaves_the_preprocessing_alone():
  config = seg_configs.get_config("quick")
  assert contrast.with_clahe(len, config.task.clahe) is len


def test_flip_averaging_is_the_mean_softmax_over_the_four_flips():
  config = seg_configs.get_config("quick")
  config.task.tta_flips = True
  rng = np.random.default_rng(0)
  weights = rng.normal(size=(5, 6, 2))  # a position-dependent "model": not flip-invariant

  def predict_fn(batch):
    return batch["image"] * weights  # (n, 5, 6, 1) -> (n, 5, 6, 2)

  images = rng.normal(size=(2, 5, 6, 1))
  out = task_lib.predict_images(config.task, predict_fn, images)
  want = 0.0
  for axes in ((), (1,), (2,), (1, 2)):
    logits = np.flip(predict_fn({"image": np.flip(images, axes)}), axes)
    want = want + np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  np.testing.assert_allclose(np.exp(out), want / 4, rtol=1e-5)
  config.task.tta_flips = False
  np.testing.assert_allclose(task_lib.predict_images(config.task, predict_fn, images),
                             predict_fn({"image": images}))


def test_saved_configs_without_the_new_fields_get_their_defaults(tmp_path):
  config = seg_configs.get_config("quick")
  saved = config.copy_and_resolve_references()
  with saved.unlocked():
    for field in ("clahe", "fov_scale", "tta_flips"):
      del saved.task[field]
  (tmp_path / "config.json").write_text(saved.to_json())
  config.task.tta_flips = True  # a prediction-time option
  restored = task_lib.config_for_prediction(config, str(tmp_path))
  assert restored.task.tta_flips and not restored.task.clahe.enabled
  assert json.loads((tmp_path / "config.json").read_text())["task"].get("clahe") is None
