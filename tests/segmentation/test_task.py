"""One-step smoke runs of every segmentation preset, bad inputs, and the predict command."""

import os

import numpy as np
import pytest
from PIL import Image

from experiments.configs import segmentation as seg_configs
from medjax.engine import train
from medjax.segmentation import predict
from medjax.segmentation import task as task_lib
from medjax.segmentation.data.errors import DataError
from tests.segmentation.data import raw_fixtures
from tests.segmentation.volumes import raw_volumes


def _tiny(config, tmp_path, raw_dir=""):
  config.task.raw_dir = str(raw_dir)
  config.task.data_dir = str(tmp_path / "prepared")
  config.task.model.features = (4, 8)
  config.task.eval_batch_size = 4
  config.batch_size = 8
  config.total_steps = 1
  config.async_checkpoints = False
  return config


def _raw(preset, root):
  if preset == "lung_ct":
    raw_fixtures.write_lung(root, size=(32, 32))
  elif preset == "drive":
    raw_fixtures.write_drive(root, train_ids=(21, 22, 37), test_ids=(), size=(40, 36))
  elif preset == "folder":
    raw_fixtures.write_folder(root)
  elif preset == "hippocampus":
    raw_volumes.write_msd(root, cases=3)
  else:
    return ""
  return root


def _tiny_preset(preset, tmp_path):
  config = _tiny(seg_configs.get_config(preset), tmp_path, _raw(preset, tmp_path / "raw"))
  if preset == "quick":
    config.task.builder.update(num_train=8, num_val=4, size=32)
  if preset == "drive":
    config.task.patch_size = config.task.sliding_window.roi = (16, 16)
  if config.task.spatial_dims == 3:
    config.task.patch_size = (8, 8, 8)
    config.task.volume.val_fraction = 0.34
    config.batch_size = 2
  if preset == "quick3d":
    config.task.builder.update(num_cases=3, shape=(12, 14, 10))
  return config


@pytest.mark.parametrize("preset", sorted(seg_configs.PRESETS))
def test_every_preset_prepares_its_data_and_batches(preset, tmp_path):
  config = _tiny_preset(preset, tmp_path)
  task = task_lib.make_task(config.task)
  batch = next(iter(task.train_dataset(2, seed=0)))
  example = task.example_batch(2)
  assert batch["image"].shape[-1] == example["image"].shape[-1] == task.in_channels()
  assert batch["image"].shape[0] == 2 and np.isfinite(batch["image"]).all()
  assert batch["label"].shape == batch["image"].shape[:-1] and batch["_mask"].sum() == 2


# The quick preset's full run is also the README's main job (tests/experiments).
@pytest.mark.parametrize("preset", [p if p == "quick" else pytest.param(p, marks=pytest.mark.slow)
                                    for p in sorted(seg_configs.PRESETS)])
def test_one_step_smoke_run_of_every_preset(preset, tmp_path):
  config = _tiny_preset(preset, tmp_path)
  results = train.train_and_evaluate(config, str(tmp_path / "work"),
                                     task_lib.make_task(config.task))
  if config.task.spatial_dims == 3:
    assert 0.0 <= results["val/dice_mean"] <= 1.0 and results["val/num_cases"] > 0
    assert (tmp_path / "work" / "val_cases.csv").exists()
    return
  assert 0.0 <= results["val/dice"] <= 1.0 and results["val/num_images"] > 0
  assert (tmp_path / "work" / "overlays.png").exists()


def test_missing_raw_dir_stops_before_training_naming_it(tmp_path):
  config = _tiny(seg_configs.get_config("lung_ct"), tmp_path, tmp_path / "nowhere")
  with pytest.raises(DataError, match="nowhere"):
    task_lib.SegmentationTask(config.task).prepare()


def test_mask_of_wrong_shape_stops_naming_the_file(tmp_path):
  root = tmp_path / "raw"
  raw_fixtures.write_lung(root, size=(32, 32))
  bad = os.path.join(root, "train", "masks_256", "ID_train_01.tif")
  raw_fixtures.write_tif(bad, np.zeros((16, 32), np.uint8))
  config = _tiny(seg_configs.get_config("lung_ct"), tmp_path, root)
  with pytest.raises(DataError, match="ID_train_01"):
    task_lib.SegmentationTask(config.task).prepare()


@pytest.mark.parametrize("field,value,message", [
    ("loss", "focal", "config.task.loss"), ("preprocess", "zscore", "config.task.preprocess")])
def test_bad_task_fields_are_named(field, value, message, tmp_path):
  config = _tiny(seg_configs.get_config("quick"), tmp_path)
  config.task[field] = value
  with pytest.raises(ValueError, match=message):
    task_lib.SegmentationTask(config.task)


def test_unknown_config_field_is_named():
  config = seg_configs.get_config("quick")
  config.lock()
  with pytest.raises(AttributeError, match="batch_size"):
    config.batch_sise = 3  # "did you mean batch_size"


@pytest.mark.slow  # end-to-end: run with -m slow (the default run stays under 10 min)
def test_predict_folder_writes_masks_of_the_input_size(tmp_path):
  config = _tiny(seg_configs.get_config("quick"), tmp_path)
  config.task.builder.update(num_train=8, num_val=4, size=32)
  task = task_lib.SegmentationTask(config.task)
  train.train_and_evaluate(config, str(tmp_path / "work"), task)
  inputs = tmp_path / "inputs"
  raw_fixtures.write_tif(str(inputs / "a.tif"), np.full((40, 36), -900, np.int16))
  raw_fixtures.write_tif(str(inputs / "b.tif"), np.full((32, 32), 40, np.int16))
  paths = predict.predict_folder(config, str(tmp_path / "work"), task, str(inputs),
                                 str(tmp_path / "out"))
  assert [os.path.basename(p) for p in paths] == ["a.png", "b.png"]
  mask = np.array(Image.open(paths[0]))
  assert mask.shape == (40, 36) and set(np.unique(mask)) <= {0, 255}


def test_validation_loss_is_the_training_loss_on_whole_images(tmp_path):
  """With constant logits (0, c), cross-entropy is log(1+e^-c) on foreground pixels
  and log(1+e^c) on background ones: the evaluator's loss must match by hand."""
  config = _tiny(seg_configs.get_config("quick"), tmp_path)
  config.task.builder.update(num_train=8, num_val=4, size=32)
  config.task.loss = "ce"
  task = task_lib.SegmentationTask(config.task)
  c = 0.7
  def predict_fn(batch):
    shape = batch["image"].shape[:-1]
    return np.stack([np.zeros(shape), np.full(shape, c)], -1).astype(np.float32)
  evaluator = task.evaluators()[0]
  assert evaluator.reports_loss
  results = dict(evaluator.run(predict_fn))
  total = count = 0.0
  for batch in evaluator.batches():
    w = batch["valid"].reshape(batch["label"].shape) * batch["_mask"].reshape(
        (-1,) + (1,) * (batch["label"].ndim - 1))
    nll = np.where(batch["label"] == 1, np.log1p(np.exp(-c)), np.log1p(np.exp(c)))
    n = batch["_mask"].sum()
    total += n * (w * nll).sum() / w.sum()
    count += n
  assert results["loss"] == pytest.approx(total / count, rel=1e-5)
