"""The volume task: prediction preprocesses as the builder did, classes are checked, and
a predict command gets the model and preprocessing the workdir was trained with."""

import numpy as np
import pytest

from experiments.configs import segmentation as seg_configs
from medjax.engine import workdir as workdir_lib
from medjax.engine.errors import InputError
from medjax.segmentation import task as task_lib
from medjax.segmentation.volumes import io, predict
from tests.segmentation.volumes import raw_volumes


def _msd_config(tmp_path, **volume):
  config = seg_configs.get_config("hippocampus")
  t = config.task
  t.raw_dir = str(raw_volumes.write_msd(tmp_path / "raw", cases=3, modality="CT",
                                        offset=-1000.0, scale=10.0))
  t.data_dir = str(tmp_path / "prepared")
  t.patch_size, t.model.features = (8, 8, 8), (4, 8)
  t.volume.update(dict(val_fraction=0.34, normalisation="ct", **volume))
  return config


def test_prediction_preprocesses_a_raw_case_exactly_as_the_builder(tmp_path):
  config = _msd_config(tmp_path, target_spacing=(1.2, 0.9, 1.5))  # resampled, CT stats
  task = task_lib.make_task(config.task)
  task.prepare()
  example = task.train_source[0]
  raw = io.read_nifti(f"{config.task.raw_dir}/imagesTr/{example['id'].decode()}.nii.gz")
  image, _ = predict.preprocess(config.task, raw, task.normalisation_stats())
  np.testing.assert_allclose(image, example["image"], rtol=1e-6, atol=1e-6)


def test_a_num_classes_that_does_not_fit_the_labels_stops_before_training(tmp_path):
  config = _msd_config(tmp_path)
  config.task.num_classes = 2
  with pytest.raises(InputError, match="num_classes=3"):
    task_lib.make_task(config.task).prepare()


def test_prediction_takes_the_trained_config_and_only_test_time_options(tmp_path):
  trained = _msd_config(tmp_path, target_spacing=(1.2, 0.9, 1.5))
  trained.task.model.features = (6, 12)
  workdir_lib.save_config(str(tmp_path / "work"), trained)
  given = seg_configs.get_config("hippocampus")  # the bare preset, as a user types it
  given.task.volume.mirror_axes = (0, 1)
  given.task.sliding_window.overlap = 0.25
  restored = task_lib.config_for_prediction(given, str(tmp_path / "work"))
  assert tuple(restored.task.model.features) == (6, 12)
  assert tuple(restored.task.volume.target_spacing) == (1.2, 0.9, 1.5)
  assert restored.task.volume.normalisation == "ct"
  assert tuple(restored.task.volume.mirror_axes) == (0, 1)
  assert restored.task.sliding_window.overlap == 0.25
  assert task_lib.config_for_prediction(given, str(tmp_path)) is given  # nothing saved
