"""NIfTI in, NIfTI out: predictions land on the input's own grid, affine and header."""

import nibabel as nib
import numpy as np
import pytest

from experiments.configs import segmentation as seg_configs
from medjax.segmentation import task as task_lib
from medjax.segmentation.data.errors import DataError
from medjax.segmentation.volumes import io, predict


def _task(tmp_path):
  config = seg_configs.get_config("quick3d")
  t = config.task
  t.data_dir = str(tmp_path / "prepared")
  t.builder.update(num_cases=3, shape=(12, 14, 10))
  t.volume.val_fraction = 0.34
  t.patch_size = (8, 8, 8)
  t.model.features = (4, 8)
  t.volume.normalisation = "none"  # so that the predictor below thresholds raw values
  return task_lib.make_task(t)


def _threshold_predictor(batch):
  """Logits of class 1 where the image is above 50, else class 0."""
  x = np.asarray(batch["image"][..., :1]) - 50
  return np.concatenate([np.zeros_like(x), x, np.full_like(x, -1e3)], axis=-1)


def _oblique_scan(path):
  """An off-centre ellipsoid (value 100) in a permuted, flipped, anisotropic grid."""
  shape = (15, 11, 9)
  idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
  truth = (((idx - (4, 7, 3)) / (3.5, 2.5, 2.5))**2).sum(-1) <= 1
  affine = np.array([[0, 0, -2.0, 30], [0.8, 0, 0, -5], [0, -1.2, 0, 12], [0, 0, 0, 1]])
  image = nib.Nifti1Image(np.where(truth, 100.0, 1.0).astype(np.float32), affine)
  image.header["descrip"] = b"oblique test scan"
  nib.save(image, path)
  return truth, affine


def test_prediction_is_written_on_the_inputs_grid(tmp_path):
  task = _task(tmp_path)  # quick3d: target spacing (1, 1, 1.5) mm, so this scan is resampled
  truth, affine = _oblique_scan(tmp_path / "scan.nii.gz")
  labels, volume = predict.predict_file(task, _threshold_predictor, str(tmp_path / "scan.nii.gz"))
  out = tmp_path / "scan_pred.nii.gz"
  io.write_nifti(str(out), labels, volume)
  written = nib.load(out)
  assert written.shape == truth.shape
  np.testing.assert_allclose(written.affine, affine, atol=1e-6)
  assert written.header["descrip"].tobytes().rstrip(b"\0") == b"oblique test scan"
  pred = np.asarray(written.dataobj) == 1
  dice = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
  assert dice > 0.85  # the inverse of reorientation + resampling put it back in place
  task.config.volume.target_spacing = (0.0, 0.0, 0.0)  # no resampling: exactly in place
  labels, _ = predict.predict_file(task, _threshold_predictor, str(tmp_path / "scan.nii.gz"))
  np.testing.assert_array_equal(labels == 1, truth)


def test_predict_refuses_an_empty_folder_and_a_wrong_channel_count(tmp_path):
  with pytest.raises(DataError, match="no .nii"):
    predict.list_volumes(str(tmp_path))
  task = _task(tmp_path)
  two = nib.Nifti1Image(np.zeros((6, 6, 6, 2), np.float32), np.eye(4))
  nib.save(two, tmp_path / "two.nii.gz")
  with pytest.raises(DataError, match="two.nii.gz has 2 channels"):
    predict.predict_file(task, _threshold_predictor, str(tmp_path / "two.nii.gz"))
