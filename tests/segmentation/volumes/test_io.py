import gzip
import os

import nibabel as nib
import numpy as np
import pytest

from medjax.segmentation.data.errors import DataError
from medjax.segmentation.volumes import io
from medjax.segmentation.volumes.volume import Volume

SHARED = os.environ.get("MEDJAX_SHARED_DATA", "")
ANATOMICAL = os.path.join(SHARED, "loader_samples", "anatomical.nii")

# An oblique, anisotropic grid: voxel -> world is not a plain scaling.
_ROT = np.array([[0.8, -0.6, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
AFFINE = np.eye(4)
AFFINE[:3, :3] = _ROT * [0.7, 0.9, 2.5]
AFFINE[:3, 3] = [-12.0, 30.5, 4.0]


def save(path, array, affine=AFFINE, dtype=None, **fields):
  img = nib.Nifti1Image(array, affine)
  if dtype is not None:
    img.header.set_data_dtype(dtype)
  for key, value in fields.items():
    img.header[key] = value
  nib.save(img, str(path))
  return str(path)


@pytest.mark.skipif(not os.path.isfile(ANATOMICAL), reason="no loader_samples/anatomical.nii")
def test_reads_the_big_endian_anatomical_sample():
  vol = io.read_nifti(ANATOMICAL)
  ref = nib.load(ANATOMICAL)
  assert ref.get_data_dtype().byteorder == ">"  # the case this sample covers
  assert vol.array.shape == (33, 41, 25, 1) and vol.array.dtype == np.float32
  np.testing.assert_array_equal(vol.array[..., 0], ref.get_fdata())
  np.testing.assert_array_equal(vol.affine, ref.affine)
  np.testing.assert_allclose(vol.spacing, (2.0, 2.0, 2.0))
  assert vol.path == ANATOMICAL and vol.header["qform_code"] == ref.header["qform_code"]


@pytest.mark.parametrize("dtype", [np.uint8, np.dtype(">i2"), np.float32])
def test_image_dtypes_become_float32(tmp_path, dtype):
  data = np.arange(3 * 4 * 5).reshape(3, 4, 5).astype(dtype)
  vol = io.read_nifti(save(tmp_path / "x.nii.gz", data))
  assert vol.array.dtype == np.float32 and vol.array.shape == (3, 4, 5, 1)
  np.testing.assert_array_equal(vol.array[..., 0], data.astype(np.float64))
  np.testing.assert_allclose(vol.affine, AFFINE, atol=1e-6)
  np.testing.assert_allclose(vol.spacing, (0.7, 0.9, 2.5), rtol=1e-6)


def test_scaled_int16_is_read_with_its_slope(tmp_path):
  img = nib.Nifti1Image(np.array([[[1, 2], [3, 4]]], np.int16), AFFINE)
  img.header.set_slope_inter(0.5, -10)
  nib.save(img, str(tmp_path / "s.nii"))
  np.testing.assert_allclose(io.read_nifti(tmp_path / "s.nii").array[..., 0],
                             [[[-9.5, -9.0], [-8.5, -8.0]]])


def test_4d_file_keeps_channels_last(tmp_path):
  data = np.random.default_rng(0).normal(size=(3, 4, 5, 2)).astype(np.float32)
  vol = io.read_nifti(save(tmp_path / "mm.nii.gz", data))
  assert vol.array.shape == (3, 4, 5, 2)
  np.testing.assert_array_equal(vol.array, data)


def test_float_labels_holding_whole_numbers_are_accepted(tmp_path):
  data = np.zeros((3, 4, 5), np.float32)
  data[1, 1, 1], data[2, 3, 4] = 1.0, 2.0
  vol = io.read_nifti_label(save(tmp_path / "l.nii.gz", data))
  assert vol.array.dtype == np.int16 and vol.array.shape == (3, 4, 5)
  np.testing.assert_array_equal(vol.array, data.astype(np.int16))


def test_fractional_labels_are_refused_naming_the_file(tmp_path):
  data = np.zeros((3, 4, 5), np.float32)
  data[0, 0, 0] = 0.5
  path = save(tmp_path / "soft.nii.gz", data)
  with pytest.raises(DataError, match=r"soft\.nii\.gz.*not whole numbers.*0\.5"):
    io.read_nifti_label(path)


def test_image_with_nan_is_refused(tmp_path):
  data = np.ones((3, 4, 5), np.float32)
  data[1, 2, 3] = np.nan
  with pytest.raises(DataError, match=r"nan\.nii\.gz has 1 voxels"):
    io.read_nifti(save(tmp_path / "nan.nii.gz", data))


def _empty(path):
  open(path, "wb").close()


def _truncated(path):
  save(path, np.arange(4000, dtype=np.float32).reshape(10, 20, 20))
  raw = open(path, "rb").read()
  open(path, "wb").write(raw[:len(raw) // 2])


def _not_gzip(path):
  open(path, "wb").write(b"not a nifti file " * 40)


def _gzip_of_garbage(path):
  open(path, "wb").write(gzip.compress(b"not a nifti file " * 40))


@pytest.mark.parametrize("make", [_empty, _truncated, _not_gzip, _gzip_of_garbage])
def test_bad_files_are_data_errors_naming_the_file(tmp_path, make):
  path = str(tmp_path / "case_7.nii.gz")
  make(path)
  for read in (io.read_nifti, io.read_nifti_label):
    with pytest.raises(DataError, match=r"case_7\.nii\.gz"):
      read(path)


def test_missing_file_is_a_data_error(tmp_path):
  with pytest.raises(DataError, match="not found.*nope.nii.gz"):
    io.read_nifti(tmp_path / "nope.nii.gz")


def _reference(tmp_path):
  img = nib.Nifti1Image(np.zeros((3, 4, 5), np.int16), AFFINE)
  img.header.set_qform(AFFINE, code=1)
  img.header.set_sform(AFFINE, code=4)
  img.header["descrip"] = b"reference scan"
  img.header.set_xyzt_units("mm", "sec")
  img.header.set_slope_inter(2.0, -100.0)
  nib.save(img, str(tmp_path / "ref.nii.gz"))
  return io.read_nifti(tmp_path / "ref.nii.gz")


@pytest.mark.parametrize("values, dtype", [((0, 1, 2), np.uint8), ((0, 7, 300), np.int16)])
def test_label_round_trip_keeps_grid_and_header(tmp_path, values, dtype):
  ref = _reference(tmp_path)
  labels = np.random.default_rng(1).choice(values, size=(3, 4, 5)).astype(np.int64)
  io.write_nifti(tmp_path / "out.nii.gz", labels, ref)
  out = nib.load(str(tmp_path / "out.nii.gz"))
  assert out.get_data_dtype() == dtype
  np.testing.assert_array_equal(np.asanyarray(out.dataobj), labels)  # no scaling applied
  np.testing.assert_allclose(out.affine, ref.affine, atol=1e-6)
  for field in ("qform_code", "sform_code", "descrip", "xyzt_units"):
    assert out.header[field] == ref.header[field], field
  np.testing.assert_allclose(out.header.get_zooms(), ref.header.get_zooms())
  np.testing.assert_array_equal(io.read_nifti_label(tmp_path / "out.nii.gz").array, labels)


def test_probabilities_are_written_4d_float32(tmp_path):
  ref = _reference(tmp_path)
  probs = np.random.default_rng(2).random((3, 4, 5, 3))
  io.write_nifti(tmp_path / "p.nii.gz", probs, ref)
  out = io.read_nifti(tmp_path / "p.nii.gz")
  assert nib.load(str(tmp_path / "p.nii.gz")).get_data_dtype() == np.float32
  np.testing.assert_array_equal(out.array, probs.astype(np.float32))
  np.testing.assert_allclose(out.affine, ref.affine, atol=1e-6)


def test_write_without_a_nifti_header_uses_the_affine(tmp_path):
  ref = Volume(np.zeros((3, 4, 5, 1), np.float32), AFFINE, None, "dicom/folder")
  io.write_nifti(tmp_path / "m.nii.gz", np.ones((3, 4, 5), bool), ref)
  out = nib.load(str(tmp_path / "m.nii.gz"))
  assert out.get_data_dtype() == np.uint8
  np.testing.assert_allclose(out.affine, AFFINE, atol=1e-6)
  with pytest.raises(ValueError, match="does not fit"):
    io.write_nifti(tmp_path / "bad.nii.gz", np.ones((3, 4, 6)), ref)
