"""One DICOM image series (a folder of single-frame slices) as a Volume in HU.

Geometry (DICOM PS3.3 C.7.6.2.1.1): the pixel in column i, row j of a slice at
ImagePositionPatient S lies at S + i * di * X + j * dj * Y in LPS patient mm,
where X, Y are ImageOrientationPatient's row and column cosines and (dj, di) is
PixelSpacing. The array is indexed (i, j, k) -- pixel_array transposed, slices
sorted along the normal X x Y -- and the affine maps that index to RAS (x and y
negated), as nibabel's. Its slice column is the step between slice positions, so
a gantry-tilted CT gets a sheared affine. Values are pixel * RescaleSlope +
RescaleIntercept.
"""

from __future__ import annotations

import collections
import os

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from medjax.segmentation.data.errors import DataError, raise_all
from medjax.segmentation.volumes.volume import Volume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_TOL = 1e-3  # orientation cosines and pixel spacings (mm) further apart are "different"


def _datasets(folder: str) -> list[tuple[str, pydicom.Dataset]]:
  """(path, dataset) of every DICOM image file directly in `folder`, by file name."""
  found = []
  for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    if name.startswith(".") or name.upper() == "DICOMDIR" or not os.path.isfile(path):
      continue
    try:
      ds = pydicom.dcmread(path, force=False)
    except InvalidDicomError:
      continue  # not a DICOM file (no "DICM" preamble): not part of a series
    except Exception as e:  # noqa: BLE001 -- a DICOM file with a damaged header
      raise DataError(f"cannot read DICOM file {path}: {type(e).__name__}: {e}") from e
    sop_class = ds.file_meta.get("MediaStorageSOPClassUID", ds.get("SOPClassUID", ""))
    if "PixelData" in ds and "Rows" in ds:
      found.append((path, ds))
    elif "Image Storage" in getattr(sop_class, "name", ""):
      raise DataError(f"DICOM file {path} ({sop_class.name}) has no complete image: "
                      f"truncated or damaged?")
    # else: DICOMDIR, structure sets, reports and other objects without an image
  return found


def _pick_series(folder, datasets, series_uid):
  """The datasets of the one series in `folder` (or of `series_uid`), else DataError."""
  groups = collections.defaultdict(list)
  for path, ds in datasets:
    groups[str(ds.get("SeriesInstanceUID", ""))].append((path, ds))
  if series_uid is not None:
    if series_uid in groups:
      return groups[series_uid]
    raise DataError(f"no series {series_uid} in {folder}; it holds:\n{_describe(groups)}")
  if len(groups) > 1:
    raise DataError(f"{folder} holds {len(groups)} DICOM series; read one at a time with "
                    f"read_series(folder, series_uid=...) or move each into its own folder:\n"
                    f"{_describe(groups)}")
  return next(iter(groups.values()))


def _describe(groups) -> str:
  lines = []
  for uid, items in sorted(groups.items()):
    description = items[0][1].get("SeriesDescription", "") or "(no description)"
    files = f"{len(items)} file" + ("s" if len(items) != 1 else "")
    lines.append(f"  {uid or '(no SeriesInstanceUID)'}: {description}, {files}")
  return "\n".join(lines)


def _floats(path, ds, keyword, count) -> np.ndarray:
  value = ds.get(keyword)
  if value is None or len(value) != count:
    raise DataError(f"DICOM file {path} lacks {keyword} ({count} numbers), needed to place "
                    f"the slice in space")
  return np.asarray([float(v) for v in value], np.float64)


def _check_same(folder, items, values, what) -> None:
  """DataError naming the first file whose `values` entry differs from the first file's."""
  for (path, _), value in zip(items, values):
    if not np.allclose(value, values[0], atol=_TOL):
      raise DataError(f"DICOM series in {folder} mixes slices with different {what}: "
                      f"{items[0][0]} has {np.round(values[0], 6).tolist()}, {path} has "
                      f"{np.round(value, 6).tolist()}")


def _geometry(folder, items):
  """Sorted items, the (4,4) LPS affine of the sorted (i, j, k) grid."""
  for path, ds in items:
    if int(ds.get("NumberOfFrames", 1) or 1) != 1 or int(ds.get("SamplesPerPixel", 1)) != 1:
      raise DataError(f"DICOM file {path} is multi-frame or colour; only series of "
                      f"single-frame grey slices are read")
  orients = [_floats(p, ds, "ImageOrientationPatient", 6) for p, ds in items]
  spacings = [_floats(p, ds, "PixelSpacing", 2) for p, ds in items]
  _check_same(folder, items, orients, "ImageOrientationPatient")
  _check_same(folder, items, spacings, "PixelSpacing")
  _check_same(folder, items, [np.array([ds.Rows, ds.Columns]) for _, ds in items],
              "sizes (Rows, Columns)")
  row, col = orients[0][:3], orients[0][3:]
  normal = np.cross(row, col)
  positions = np.array([_floats(p, ds, "ImagePositionPatient", 3) for p, ds in items])
  order = np.argsort(positions @ normal, kind="stable")
  items, positions = [items[o] for o in order], positions[order]
  step = _slice_step(folder, items, positions, normal)
  affine = np.eye(4)
  affine[:3, 0] = row * spacings[0][1]  # i: along a row, next column
  affine[:3, 1] = col * spacings[0][0]  # j: down a column, next row
  affine[:3, 2] = step
  affine[:3, 3] = positions[0]
  return items, affine


def _slice_step(folder, items, positions, normal) -> np.ndarray:
  """The LPS vector from one slice to the next; DataError for gaps or duplicates."""
  if len(items) == 1:
    thickness = items[0][1].get("SliceThickness")
    return normal * (float(thickness) if thickness not in (None, "") else 1.0)
  along = positions @ normal
  gaps = np.diff(along)
  if gaps.max() < 0.01:
    raise DataError(f"DICOM series in {folder}: all {len(items)} slices share one position "
                    f"(echoes, phases or time points in one series?); split it into series")
  typical = float(gaps[gaps >= 0.01].min())  # missing slices only make gaps wider
  tol = max(0.01, 0.01 * typical)  # mm: DICOM positions are rounded
  problems = []
  for k in np.flatnonzero(np.abs(gaps - typical) > tol):
    what = ("two slices at the same position (a duplicate?)" if gaps[k] < tol else
            f"a gap of {gaps[k]:.4g} mm (a missing slice?)")
    problems.append(f"{what} between {items[k][0]} ({along[k]:.4g} mm along the slice "
                    f"normal) and {items[k + 1][0]} ({along[k + 1]:.4g} mm); the other "
                    f"slices are {typical:.4g} mm apart")
  raise_all(problems, f"the DICOM series in {folder}")
  step = (positions[-1] - positions[0]) / (len(items) - 1)
  off_line = np.linalg.norm(positions - (positions[0] + np.outer(np.arange(len(items)), step)),
                            axis=1)
  if off_line.max() > tol:
    k = int(np.argmax(off_line))
    raise DataError(f"DICOM series in {folder}: slice {items[k][0]} is {off_line[k]:.3g} mm "
                    f"off the line through the other slice positions")
  return step


def _pixels(path: str, ds: pydicom.Dataset) -> np.ndarray:
  """One slice in HU (or the modality's units) as (columns, rows) float32."""
  try:
    pixels = ds.pixel_array
  except Exception as e:  # noqa: BLE001 -- truncated pixel data, a codec pydicom lacks, ...
    syntax = ds.file_meta.get("TransferSyntaxUID", "?") if ds.file_meta else "?"
    raise DataError(f"cannot decode the pixels of DICOM file {path} (transfer syntax "
                    f"{syntax}): {type(e).__name__}: {e}") from e
  slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
  intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
  return (pixels.astype(np.float64) * slope + intercept).astype(np.float32).T


def read_series(folder, series_uid: str | None = None) -> Volume:
  """Reads the DICOM series in `folder` as an (X, Y, Z, 1) float32 Volume (RAS affine).

  Files that are not DICOM, a DICOMDIR and non-image objects are skipped. A folder
  with several series needs `series_uid`; missing slices, duplicated positions and
  mixed orientations, pixel spacings or sizes are DataErrors naming the files.
  """
  folder = os.fspath(folder)
  if not os.path.isdir(folder):
    raise DataError(f"DICOM folder not found: {folder}")
  datasets = _datasets(folder)
  if not datasets:
    raise DataError(f"no DICOM image files in {folder}")
  items, affine_lps = _geometry(folder, _pick_series(folder, datasets, series_uid))
  array = np.stack([_pixels(path, ds) for path, ds in items], axis=2)
  return Volume(array[..., None], LPS_TO_RAS @ affine_lps, None, folder)
