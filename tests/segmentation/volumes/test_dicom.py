import os
import re
import shutil
import warnings

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
import pytest

from medjax.segmentation.data.errors import DataError
from medjax.segmentation.volumes import dicom

SHARED = os.environ.get("MEDJAX_SHARED_DATA", "")
CT_SMALL = os.path.join(SHARED, "loader_samples", "CT_small.dcm")

ROWS, COLS = 4, 5
PIXEL_SPACING = (0.8, 0.6)  # DICOM order: (between rows, between columns)
GAP = 2.5


def _oblique():
  """Row and column cosines of an orientation rotated about two axes."""
  a, b = np.deg2rad(20.0), np.deg2rad(-35.0)
  rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
  rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
  rot = rz @ rx
  return rot[:, 0], rot[:, 1]


def write_slice(path, pixels, position, orientation, series_uid, *, spacing=PIXEL_SPACING,
                slope=2.0, intercept=-1024.0, description="axial"):
  meta = FileMetaDataset()
  meta.MediaStorageSOPClassUID = CTImageStorage
  meta.MediaStorageSOPInstanceUID = generate_uid()
  meta.TransferSyntaxUID = ExplicitVRLittleEndian
  ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
  ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
  ds.Modality, ds.SeriesInstanceUID, ds.SeriesDescription = "CT", series_uid, description
  ds.ImagePositionPatient = [float(v) for v in position]
  ds.ImageOrientationPatient = [float(v) for v in np.concatenate(orientation)]
  ds.PixelSpacing = list(spacing)
  ds.SliceThickness = GAP
  ds.Rows, ds.Columns = pixels.shape
  ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
  ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
  ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
  ds.PixelData = pixels.astype("<i2").tobytes()
  ds.save_as(str(path), enforce_file_format=True)


def write_series(folder, n=4, orientation=None, origin=(10.0, -20.0, 30.0), skip=(),
                 series_uid=None, seed=0, tilt=0.0, **kw):
  """n slices GAP apart along the normal, written under shuffled file names.

  `tilt` mm per slice along the rows (a gantry-tilted CT) shears the stack.

  Returns {slice index: (file path, pixels, position)}; slices in `skip` are left out.
  """
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  row, col = orientation or _oblique()
  normal = np.cross(row, col)
  series_uid = series_uid or generate_uid()
  names = rng.permutation(n)  # file name order differs from slice order
  written = {}
  for k in range(n):
    if k in skip:
      continue
    pixels = rng.integers(-500, 1500, size=(ROWS, COLS)).astype(np.int16)
    position = np.asarray(origin) + k * (GAP * normal + tilt * col)
    path = os.path.join(folder, f"IM{names[k]:04d}.dcm")
    write_slice(path, pixels, position, (row, col), series_uid, **kw)
    written[k] = (path, pixels, position)
  return written


def test_slices_sorted_and_rescaled_to_hu(tmp_path):
  written = write_series(tmp_path / "s")
  vol = dicom.read_series(tmp_path / "s")
  assert vol.array.shape == (COLS, ROWS, 4, 1) and vol.array.dtype == np.float32
  for k, (_, pixels, _) in written.items():
    np.testing.assert_array_equal(vol.array[:, :, k, 0], (pixels * 2.0 - 1024.0).T)
  np.testing.assert_allclose(vol.spacing, (PIXEL_SPACING[1], PIXEL_SPACING[0], GAP), atol=1e-6)


@pytest.mark.parametrize("orientation, tilt", [
    (None, 0.0), (((1, 0, 0), (0, 1, 0)), 0.0), (((0, 1, 0), (0, 0, -1)), 0.0), (None, 0.7)])
def test_affine_matches_the_dicom_formula(tmp_path, orientation, tilt):
  orient = None if orientation is None else tuple(np.array(v, float) for v in orientation)
  written = write_series(tmp_path / "s", n=3, orientation=orient, tilt=tilt)
  vol = dicom.read_series(tmp_path / "s")
  i, j, k = np.meshgrid(np.arange(COLS), np.arange(ROWS), np.arange(3), indexing="ij")
  ras = np.einsum("ab,bxyz->axyz", vol.affine, np.stack([i, j, k, np.ones_like(i)]))[:3]
  for kk, (path, _, _) in written.items():
    ds = pydicom.dcmread(path)
    s = np.array(ds.ImagePositionPatient, float)
    x, y = np.array(ds.ImageOrientationPatient[:3], float), np.array(
        ds.ImageOrientationPatient[3:], float)
    dj, di = (float(v) for v in ds.PixelSpacing)
    # PS3.3 C.7.6.2.1.1: P = S + X * di * i + Y * dj * j (LPS); RAS negates x and y.
    lps = s[:, None, None] + x[:, None, None] * di * i[None, :, :, kk] + (
        y[:, None, None] * dj * j[None, :, :, kk])
    np.testing.assert_allclose(ras[:, :, :, kk], lps * np.array([-1, -1, 1])[:, None, None],
                               atol=1e-5)


def test_agrees_with_nibabel_slice_wrapper(tmp_path):
  nicom = pytest.importorskip("nibabel.nicom.dicomwrappers")
  written = write_series(tmp_path / "s", n=3)
  vol = dicom.read_series(tmp_path / "s")
  for k, (path, _, _) in written.items():
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", UserWarning)  # "DICOM readers are highly experimental"
      wrapper = nicom.wrapper_from_data(pydicom.dcmread(path))
      theirs = wrapper.affine  # LPS, array (rows, cols): our first two axes swapped
      their_pixels = wrapper.get_data()
    ours = np.diag([-1.0, -1.0, 1.0, 1.0]) @ vol.affine  # back to LPS
    np.testing.assert_allclose(ours[:3, 0], theirs[:3, 1], atol=1e-6)
    np.testing.assert_allclose(ours[:3, 1], theirs[:3, 0], atol=1e-6)
    np.testing.assert_allclose(ours[:3, :3] @ [0, 0, k] + ours[:3, 3], theirs[:3, 3], atol=1e-5)
    np.testing.assert_allclose(np.abs(ours[:3, 2] @ theirs[:3, 2]), GAP * GAP, rtol=1e-6)
    np.testing.assert_allclose(vol.array[:, :, k, 0], their_pixels.T)


def test_single_slice_ct_sample():
  if not os.path.isfile(CT_SMALL):
    pytest.skip("no loader_samples/CT_small.dcm")
  ds = pydicom.dcmread(CT_SMALL)
  folder = os.path.dirname(CT_SMALL)
  vol = dicom.read_series(folder, series_uid=ds.SeriesInstanceUID)  # MR_small is another series
  assert vol.array.shape == (128, 128, 1, 1)
  from pydicom.pixels import apply_rescale  # noqa: PLC0415 -- pydicom's own modality LUT
  np.testing.assert_allclose(vol.array[..., 0, 0], apply_rescale(ds.pixel_array, ds).T)
  np.testing.assert_allclose(vol.spacing, (*map(float, ds.PixelSpacing), ds.SliceThickness),
                             rtol=1e-6)
  lps = np.array(ds.ImagePositionPatient, float)
  np.testing.assert_allclose(vol.affine[:3, 3], lps * [-1, -1, 1])


def test_two_series_need_a_choice(tmp_path):
  write_series(tmp_path / "s", n=3, series_uid="1.2.3.1", description="bone", seed=1)
  write_series(tmp_path / "t", n=2, series_uid="1.2.3.2", description="soft", seed=2)
  for path in (tmp_path / "t").iterdir():
    shutil.move(str(path), str(tmp_path / "s" / ("b" + path.name)))
  with pytest.raises(DataError, match=r"2 DICOM series") as err:
    dicom.read_series(tmp_path / "s")
  message = str(err.value)
  assert "1.2.3.1: bone, 3 files" in message and "1.2.3.2: soft, 2 files" in message
  assert "series_uid=" in message
  assert dicom.read_series(tmp_path / "s", series_uid="1.2.3.2").array.shape[2] == 2
  with pytest.raises(DataError, match="no series 9.9"):
    dicom.read_series(tmp_path / "s", series_uid="9.9")


@pytest.mark.parametrize("n, skip", [(5, (2,)), (6, (1, 4))])
def test_missing_slices_name_their_neighbours(tmp_path, n, skip):
  written = write_series(tmp_path / "s", n=n, skip=skip)
  with pytest.raises(DataError, match=r"gap of 5 mm \(a missing slice\?\)") as err:
    dicom.read_series(tmp_path / "s")
  for k in skip:
    assert written[k - 1][0] in str(err.value) and written[k + 1][0] in str(err.value)
  assert str(err.value).count("a missing slice?") == len(skip)


def test_duplicate_position_is_refused(tmp_path):
  written = write_series(tmp_path / "s", n=3)
  path, pixels, position = written[1]
  write_slice(tmp_path / "s" / "copy.dcm", pixels, position, _oblique(),
              str(pydicom.dcmread(path).SeriesInstanceUID))
  with pytest.raises(DataError, match="same position"):
    dicom.read_series(tmp_path / "s")


@pytest.mark.parametrize("change, what", [
    (dict(orientation=((1.0, 0, 0), (0, 1.0, 0))), "ImageOrientationPatient"),
    (dict(spacing=(0.5, 0.5)), "PixelSpacing"),
    (dict(pixels=np.zeros((ROWS + 1, COLS), np.int16)), "sizes (Rows, Columns)"),
])
def test_mixed_slices_are_refused(tmp_path, change, what):
  written = write_series(tmp_path / "s", n=3)
  path, pixels, position = written[2]
  args = dict(pixels=pixels, position=position, orientation=_oblique())
  args.update(change)
  write_slice(path, series_uid=str(pydicom.dcmread(path).SeriesInstanceUID), **args)
  with pytest.raises(DataError, match=f"different {re.escape(what)}.*{os.path.basename(path)}"):
    dicom.read_series(tmp_path / "s")


def test_non_dicom_files_and_dicomdir_are_skipped(tmp_path):
  write_series(tmp_path / "s", n=3)
  (tmp_path / "s" / "notes.txt").write_text("not dicom")
  (tmp_path / "s" / "DICOMDIR").write_bytes(b"\0" * 200)
  assert dicom.read_series(tmp_path / "s").array.shape == (COLS, ROWS, 3, 1)


@pytest.mark.parametrize("keep, match", [(-10, "cannot decode the pixels"),
                                         (400, "no complete image")])
def test_truncated_slice_is_named(tmp_path, keep, match):
  written = write_series(tmp_path / "s", n=3)
  path = written[1][0]
  raw = open(path, "rb").read()
  open(path, "wb").write(raw[:keep])
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # pydicom on the cut-off UID
    with pytest.raises(DataError, match=match) as err:
      dicom.read_series(tmp_path / "s")
  assert path in str(err.value)


def test_folder_without_dicom_is_refused(tmp_path):
  (tmp_path / "readme.txt").write_text("hello")
  with pytest.raises(DataError, match="no DICOM image files"):
    dicom.read_series(tmp_path)
  with pytest.raises(DataError, match="not found"):
    dicom.read_series(tmp_path / "absent")
