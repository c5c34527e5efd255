"""NIfTI volumes in and out (nibabel), with errors that name the file.

Images come back as (X, Y, Z, C) float32: a 3D file gets C=1, a 4D file (MSD
multi-modal, e.g. BraTS or prostate) keeps its 4th axis as channels. Labels come
back as (X, Y, Z) int16 after a check that the stored values are whole numbers.
The affine is nibabel's `img.affine` (sform, else qform, else from the zooms).
"""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np

from medjax.segmentation.data.errors import DataError
from medjax.segmentation.volumes.volume import Volume

_INT16 = np.iinfo(np.int16)


def _load(path) -> tuple[nib.Nifti1Image, np.ndarray]:
  """Opens `path` and reads its (scaled) voxels, or raises DataError naming it."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise DataError(f"NIfTI file not found: {path}")
  if os.path.getsize(path) == 0:
    raise DataError(f"NIfTI file is empty (0 bytes): {path}")
  try:
    img = nib.load(path)
    data = np.asanyarray(img.dataobj)
  except Exception as e:  # noqa: BLE001 -- gzip, header and truncation errors all mean "bad file"
    raise DataError(f"cannot read NIfTI file {path} (truncated or corrupt?): "
                    f"{type(e).__name__}: {e}") from e
  affine = np.asarray(img.affine, dtype=np.float64)
  if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
    raise DataError(f"NIfTI file {path} has an unusable affine (voxel size 0 or not "
                    f"finite):\n{affine}")
  return img, data


def _drop_empty_axes(data: np.ndarray) -> np.ndarray:
  """(X,Y,Z,1) -> (X,Y,Z); (X,Y,Z,1,C) (a NIfTI vector image) -> (X,Y,Z,C)."""
  if data.ndim == 5 and data.shape[3] == 1:
    data = data[:, :, :, 0, :]
  while data.ndim > 3 and data.shape[-1] == 1:
    data = data[..., 0]
  return data


def read_nifti(path) -> Volume:
  """Reads an image as (X, Y, Z, C) float32 with its affine and header."""
  img, data = _load(path)
  data = _drop_empty_axes(data)
  if data.ndim == 3:
    data = data[..., None]
  if data.ndim != 4:
    raise DataError(f"NIfTI image {path} has shape {data.shape}; expected 3D (X, Y, Z) or "
                    f"4D (X, Y, Z, channels)")
  data = data.astype(np.float32)
  bad = int(data.size - np.count_nonzero(np.isfinite(data)))
  if bad:
    raise DataError(f"NIfTI image {path} has {bad} voxels that are NaN or infinite")
  return Volume(data, np.asarray(img.affine, np.float64), img.header, os.fspath(path))


def read_nifti_label(path) -> Volume:
  """Reads a label map as (X, Y, Z) int16; float storage is fine if every value is whole."""
  img, data = _load(path)
  data = _drop_empty_axes(data)
  if data.ndim != 3:
    raise DataError(f"NIfTI label {path} has shape {data.shape}; expected 3D (X, Y, Z)")
  if not np.issubdtype(data.dtype, np.integer):
    data = np.asarray(data, np.float64)
    whole = np.isfinite(data) & (data == np.round(data))
    if not np.all(whole):
      examples = np.unique(data[~whole])[:5]
      raise DataError(f"NIfTI label {path} holds values that are not whole numbers "
                      f"(e.g. {examples.tolist()}); a label map must hold class indices")
  if data.size and (data.min() < _INT16.min or data.max() > _INT16.max):
    raise DataError(f"NIfTI label {path} has values from {data.min()} to {data.max()}, "
                    f"outside the int16 range of class indices")
  return Volume(data.astype(np.int16), np.asarray(img.affine, np.float64), img.header,
                os.fspath(path))


def _output_dtype(array: np.ndarray) -> np.dtype:
  """uint8 (or int16 if needed) for labels; float32 for anything fractional."""
  if array.dtype == np.bool_:
    return np.dtype(np.uint8)
  if np.issubdtype(array.dtype, np.integer):
    lo, hi = (int(array.min()), int(array.max())) if array.size else (0, 0)
    if lo >= 0 and hi <= 255:
      return np.dtype(np.uint8)
    if lo >= _INT16.min and hi <= _INT16.max:
      return np.dtype(np.int16)
    raise ValueError(f"label values {lo}..{hi} do not fit int16")
  return np.dtype(np.float32)


def write_nifti(path, array, reference: Volume) -> None:
  """Writes `array` ((X,Y,Z) labels or (X,Y,Z,K) maps) on `reference`'s affine and header.

  Labels (integer or bool arrays) are stored as uint8 (int16 if a value needs it),
  everything else as float32; the header's dtype and scaling follow the array.
  """
  array = np.asarray(array)
  if array.ndim not in (3, 4) or array.shape[:3] != tuple(reference.shape):
    raise ValueError(f"array of shape {array.shape} does not fit the reference grid "
                     f"{reference.shape} of {reference.path}")
  array = array.astype(_output_dtype(array))
  header = reference.header
  header = header.copy() if isinstance(header, nib.Nifti1Header) else None
  img = nib.Nifti1Image(array, np.asarray(reference.affine, np.float64), header=header)
  img.header.set_data_dtype(array.dtype)
  img.header.set_slope_inter(1.0, 0.0)
  if array.dtype.kind in "biu":  # labels: not the image's display range or intent
    img.header["cal_min"], img.header["cal_max"] = 0, float(array.max(initial=0))
    img.header.set_intent("label")
  nib.save(img, os.fspath(path))
