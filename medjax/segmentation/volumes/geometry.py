"""Volume geometry: reorient to RAS, crop to the non-zero region, resample; and back.

`forward` takes a `Volume` (and its label) from the file grid to the grid the
network sees, in three steps:

1. reorient to the closest canonical (RAS+) axis order with
   `nibabel.orientations` (a flip/permutation of the voxel axes; the same
   result as `nibabel.as_closest_canonical`);
2. crop to the bounding box of the voxels that are non-zero in any channel
   (nnU-Net's crop; an all-zero image keeps the full volume);
3. resample each axis to `target_spacing` with `scipy.ndimage.zoom` in grid
   mode (voxel *extents* are aligned, so output voxel i samples input position
   (i + 0.5) * n_in / n_out - 0.5). Images use a spline of `image_order`
   (3 = cubic), labels nearest neighbour or per-class linear (one-hot, order 1,
   argmax). Axes whose spacing already matches within 1e-3 mm keep their size;
   when every axis matches nothing is resampled, so 1 mm data is untouched.

The `GridRecord` holds what `inverse` needs to bring a prediction back to the
file grid: resample to the cropped shape, pad into the canonical grid
(background outside the crop), undo the orientation. With
`io.write_nifti(path, inverse(pred, record), original_volume)` the prediction
lands on the original grid, affine and header.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import nibabel.orientations as nio
import numpy as np
from scipy import ndimage

from medjax.segmentation.data.errors import DataError
from medjax.segmentation.volumes.volume import Volume

SPACING_TOLERANCE_MM = 1e-3  # spacings closer than this count as equal (no resampling)
_RAS = nio.axcodes2ornt(("R", "A", "S"))



@dataclasses.dataclass(frozen=True)
class GridRecord:
  """Everything needed to map a preprocessed array back to its file grid.

  Shapes and spacings after step 1 are in canonical (RAS) axis order;
  `original_shape` and `original_affine` are the file's. `bbox` is the crop,
  ((lo, hi),) * 3 with hi exclusive, in canonical voxel indices.
  """

  original_shape: tuple[int, int, int]
  original_affine: tuple[tuple[float, ...], ...]
  orientation: tuple[tuple[float, float], ...]  # nibabel ornt: file axes -> RAS
  canonical_shape: tuple[int, int, int]
  bbox: tuple[tuple[int, int], ...]
  cropped_shape: tuple[int, int, int]
  resampled_shape: tuple[int, int, int]
  spacing: tuple[float, float, float]  # canonical order, before resampling
  target_spacing: tuple[float, float, float]  # what was asked (= spacing if none)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self))

  @classmethod
  def from_json(cls, text: str) -> GridRecord:
    raw = json.loads(text)
    return cls(**{k: _tuples(v) for k, v in raw.items()})

  @property
  def canonical_affine(self) -> np.ndarray:
    """Voxel -> world affine of the reoriented (uncropped, unresampled) grid."""
    flip = nio.inv_ornt_aff(np.asarray(self.orientation), self.original_shape)
    return np.asarray(self.original_affine) @ flip


def _tuples(value):
  """JSON lists back to (nested) tuples."""
  return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _channels_last(image: Volume) -> np.ndarray:
  array = np.asarray(image.array)
  if array.ndim == 3:
    array = array[..., None]
  if array.ndim != 4:
    raise DataError(f"{image.path or 'image'}: expected (X, Y, Z[, C]) voxels, "
                    f"got shape {array.shape}")
  return array


def _label_array(label, image: Volume) -> np.ndarray | None:
  if label is None:
    return None
  array = np.asarray(label.array if isinstance(label, Volume) else label)
  name = getattr(label, "path", "") or "label"
  if array.shape != image.shape:
    raise DataError(f"{name}: label shape {array.shape} differs from the image's "
                    f"{image.shape} ({image.path or 'image'})")
  if array.size and (array.min() < 0 or array.max() > 255):
    raise DataError(f"{name}: label values must be in 0..255, got {array.min()}..{array.max()}")
  return array.astype(np.uint8)


def nonzero_bbox(image: np.ndarray) -> tuple[tuple[int, int], ...]:
  """Bounding box ((lo, hi),) * 3 of voxels non-zero in any channel (all zero: full)."""
  mask = np.any(image != 0, axis=-1) if image.ndim == 4 else image != 0
  if not mask.any():
    return tuple((0, n) for n in mask.shape)
  box = []
  for axis in range(3):
    hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
    box.append((int(hits[0]), int(hits[-1]) + 1))
  return tuple(box)


def _resampled_shape(shape, spacing, target) -> tuple[int, int, int]:
  out = []
  for n, s, t in zip(shape, spacing, target):
    same = abs(s - t) < SPACING_TOLERANCE_MM
    out.append(int(n) if same else max(1, int(round(n * s / t))))
  return tuple(out)


def _zoom(array: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
  """Resamples a 3D array to `shape` with voxel extents aligned (grid mode)."""
  if tuple(array.shape) == tuple(shape):
    return array
  factors = [o / i for o, i in zip(shape, array.shape)]
  out = ndimage.zoom(array, factors, order=order, mode="nearest", grid_mode=True)
  assert out.shape == tuple(shape), (out.shape, shape)
  return out


def _zoom_label(label: np.ndarray, shape, mode: str) -> np.ndarray:
  if mode == "nearest":
    return _zoom(label, shape, 0)
  if mode != "linear":
    raise ValueError(f"label_mode must be 'nearest' or 'linear', got {mode!r}")
  if tuple(label.shape) == tuple(shape):
    return label
  classes = np.arange(int(label.max()) + 1)
  scores = [_zoom((label == k).astype(np.float32), shape, 1) for k in classes]
  return np.argmax(np.stack(scores, axis=-1), axis=-1).astype(np.uint8)


def forward(image: Volume, label=None, target_spacing=None, crop: bool = True,
            image_order: int = 3, label_mode: str = "nearest"):
  """File grid -> network grid: reorient, crop, resample (see the module docstring).

  Args:
    image: the scan; array (X, Y, Z) or (X, Y, Z, C).
    label: None, an (X, Y, Z) integer array or a label `Volume` on the same grid.
    target_spacing: mm per canonical (R, A, S) axis; None keeps the spacing.
    crop: crop to the non-zero region of the image.
    image_order: spline order for the image (3 cubic, 1 linear, 0 nearest).
    label_mode: 'nearest' or 'linear' (per-class linear then argmax).

  Returns:
    (image (x, y, z, C) float32, label (x, y, z) uint8 or None, GridRecord).
  """
  array = _channels_last(image)
  label_array = _label_array(label, image)
  start = nio.io_orientation(np.asarray(image.affine))
  ornt = nio.ornt_transform(start, _RAS)
  array = nio.apply_orientation(array, ornt)
  if label_array is not None:
    label_array = nio.apply_orientation(label_array, ornt)
  spacing = [0.0] * 3
  for axis, s in enumerate(image.spacing):
    spacing[int(ornt[axis, 0])] = float(s)
  canonical_shape = tuple(int(n) for n in array.shape[:3])
  bbox = nonzero_bbox(array) if crop else tuple((0, n) for n in canonical_shape)
  box = tuple(slice(lo, hi) for lo, hi in bbox)
  array = array[box]
  cropped_shape = tuple(int(n) for n in array.shape[:3])
  target = tuple(float(t) for t in (spacing if target_spacing is None else target_spacing))
  if len(target) != 3 or min(target) <= 0:
    raise ValueError(f"target_spacing must be 3 positive mm values, got {target_spacing!r}")
  shape = _resampled_shape(cropped_shape, spacing, target)
  out = np.stack([_zoom(array[..., c].astype(np.float32), shape, image_order)
                  for c in range(array.shape[-1])], axis=-1).astype(np.float32)
  out_label = None
  if label_array is not None:
    out_label = _zoom_label(label_array[box], shape, label_mode).astype(np.uint8)
  record = GridRecord(
      original_shape=tuple(int(n) for n in image.shape),
      original_affine=tuple(tuple(float(v) for v in row) for row in np.asarray(image.affine)),
      orientation=tuple((float(a), float(f)) for a, f in ornt),
      canonical_shape=canonical_shape, bbox=bbox, cropped_shape=cropped_shape,
      resampled_shape=shape, spacing=tuple(spacing), target_spacing=target)
  return out, out_label, record


def inverse(array: np.ndarray, record: GridRecord, order: int = 0) -> np.ndarray:
  """Network grid -> file grid for labels (x, y, z) or probabilities (x, y, z, K).

  Labels are resampled with `order` (0 = nearest) and are 0 outside the crop.
  Probabilities are resampled per class with max(order, 1) (linear keeps them
  summing to one) and are background (1 for class 0, 0 otherwise) outside it.
  """
  array = np.asarray(array)
  if tuple(array.shape[:3]) != tuple(record.resampled_shape) or array.ndim not in (3, 4):
    raise ValueError(f"expected an array of spatial shape {record.resampled_shape}, "
                     f"got {array.shape}")
  box = tuple(slice(lo, hi) for lo, hi in record.bbox)
  if array.ndim == 3:
    full = np.zeros(record.canonical_shape, array.dtype)
    full[box] = _zoom(array, record.cropped_shape, order)
  else:
    classes = array.shape[-1]
    full = np.zeros((*record.canonical_shape, classes), np.float32)
    full[..., 0] = 1.0
    full[box] = np.stack([_zoom(array[..., k].astype(np.float32), record.cropped_shape,
                                max(order, 1)) for k in range(classes)], axis=-1)
  back = nio.ornt_transform(_RAS, np.asarray(record.orientation))  # RAS -> file axes
  return np.ascontiguousarray(nio.apply_orientation(full, back))


def preprocessed_affine(record: GridRecord) -> np.ndarray:
  """Voxel -> world (RAS+ mm) affine of the preprocessed (cropped, resampled) grid.

  Output voxel i sits at cropped position r * i + (r - 1) / 2 with
  r = cropped / resampled size per axis (zoom's grid mode), offset by the crop.
  """
  ratio = np.asarray(record.cropped_shape, float) / np.asarray(record.resampled_shape, float)
  local = np.eye(4)
  local[:3, :3] = np.diag(ratio)
  local[:3, 3] = (ratio - 1) / 2 + np.asarray([lo for lo, _ in record.bbox], float)
  return record.canonical_affine @ local
