"""Per-case, per-class 3D segmentation metrics in millimetres, and their aggregate.

For each foreground class k of one case (integer prediction and truth (X, Y, Z)
on the same grid, voxel `spacing` in mm per axis):

* `dice_class_k`: 2 |P & T| / (|P| + |T|).
* `hd95_mm_class_k`: symmetric 95th-percentile Hausdorff distance between the
  two surfaces, the max of the two directed 95th percentiles (MONAI
  `compute_hausdorff_distance(percentile=95)`).
* `nsd_class_k`: normalised surface Dice at `tolerance_mm` (Nikolov et al.
  2021): the share of surface voxels of both masks within the tolerance of the
  other surface, counted per voxel (MONAI `compute_surface_dice` without
  sub-voxels; DeepMind's `surface-distance` weights surfels by area instead).
* `volume_error_ml_class_k`: (|P| - |T|) * prod(spacing) / 1000, signed;
  `relative_volume_error_class_k`: (|P| - |T|) / |T|.

Surfaces are foreground voxels that lose an erosion (`scipy.ndimage`) with a
3D structure of `connectivity` 1 (6 face neighbours, the default, as MONAI) or
3 (26 neighbours, a thinner surface); outside the grid counts as background.
Distances are `distance_transform_edt(sampling=spacing)` between surface voxel
centres. Empty masks: both empty -> dice 1, hd95 0, nsd 1, volume errors 0;
exactly one empty -> dice 0, nsd 0, hd95 NaN; an empty truth with a non-empty
prediction -> relative volume error NaN. `aggregate` takes NaN-skipping means
over cases and reports how many cases were NaN (`num_undefined_<name>`; the
`num_` prefix keeps counts out of the learning-curve plots).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

_PER_CLASS = ("dice", "hd95_mm", "nsd", "volume_error_ml", "relative_volume_error")
_CAN_BE_NAN = ("hd95_mm", "relative_volume_error")


def surface(mask: np.ndarray, connectivity: int = 1) -> np.ndarray:
  """Boundary voxels of a boolean mask: those removed by one erosion."""
  structure = ndimage.generate_binary_structure(mask.ndim, connectivity)
  return mask & ~ndimage.binary_erosion(mask, structure, border_value=0)


def surface_distances(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float],
                      connectivity: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """mm from each surface voxel of `pred` to `truth`'s surface, and the reverse.

  Both masks must be non-empty. The distance transforms run on the joint
  bounding box (plus one voxel), which holds every surface voxel: same result.
  """
  both = pred | truth
  box = tuple(slice(max(int(i.min()) - 1, 0), int(i.max()) + 2) for i in np.nonzero(both))
  pred_surface = surface(pred[box], connectivity)
  truth_surface = surface(truth[box], connectivity)
  to_truth = ndimage.distance_transform_edt(~truth_surface, sampling=spacing)
  to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=spacing)
  return to_truth[pred_surface], to_pred[truth_surface]


def binary_metrics(pred, truth, spacing: Sequence[float], tolerance_mm: float = 1.0,
                   connectivity: int = 1) -> dict[str, float]:
  """The per-class metrics (see the module docstring) of two boolean masks."""
  pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
  spacing = _check_spacing(spacing, pred.ndim)
  n_pred, n_truth = int(pred.sum()), int(truth.sum())
  ml = float(np.prod(spacing)) / 1000.0
  out = {"volume_error_ml": (n_pred - n_truth) * ml,
         "relative_volume_error": (n_pred - n_truth) / n_truth if n_truth else
         (0.0 if n_pred == 0 else float("nan"))}
  if n_pred == 0 and n_truth == 0:
    return {"dice": 1.0, "hd95_mm": 0.0, "nsd": 1.0, **out}
  if n_pred == 0 or n_truth == 0:
    return {"dice": 0.0, "hd95_mm": float("nan"), "nsd": 0.0, **out}
  d_pred, d_truth = surface_distances(pred, truth, spacing, connectivity)
  within = np.sum(d_pred <= tolerance_mm) + np.sum(d_truth <= tolerance_mm)
  return {"dice": 2.0 * np.sum(pred & truth) / (n_pred + n_truth),
          "hd95_mm": float(max(np.percentile(d_pred, 95), np.percentile(d_truth, 95))),
          "nsd": float(within / (d_pred.size + d_truth.size)), **out}


@dataclasses.dataclass
class CaseMetrics:
  """One case's metrics: `values` maps `<metric>_class_<k>` and `<metric>_mean`
  (mean over the foreground classes, NaN skipped) to floats."""

  case_id: str
  values: dict[str, float]

  def row(self) -> dict[str, object]:
    """A flat CSV row: {"case": id, metric: value, ...}."""
    return {"case": self.case_id, **self.values}


def case_metrics(case_id: str, pred, truth, spacing: Sequence[float], num_classes: int,
                 tolerance_mm: float = 1.0, connectivity: int = 1) -> CaseMetrics:
  """Metrics of classes 1..num_classes-1 for one case (label maps (X, Y, Z))."""
  pred, truth = np.asarray(pred), np.asarray(truth)
  if pred.shape != truth.shape:
    raise ValueError(f"case {case_id}: prediction {pred.shape} and truth {truth.shape} "
                     "are on different grids")
  values = {}
  for k in range(1, num_classes):
    scores = binary_metrics(pred == k, truth == k, spacing, tolerance_mm, connectivity)
    values.update({f"{name}_class_{k}": float(v) for name, v in scores.items()})
  for name in _PER_CLASS:
    values[f"{name}_mean"] = _nanmean(
        [values[f"{name}_class_{k}"] for k in range(1, num_classes)])
  return CaseMetrics(str(case_id), values)


def aggregate(rows: Sequence[CaseMetrics]) -> dict[str, float]:
  """Mean over cases of every metric (NaN skipped), `num_cases`, and for metrics
  that can be undefined, `num_undefined_<name>` = the number of NaN cases."""
  out = {"num_cases": float(len(rows))}
  if not rows:
    return out
  for name in rows[0].values:
    values = np.array([r.values[name] for r in rows], np.float64)
    out[name] = _nanmean(values)
    if name.startswith(_CAN_BE_NAN):
      out[f"num_undefined_{name}"] = float(np.isnan(values).sum())
  return out


def write_csv(rows: Sequence[CaseMetrics], path: str) -> None:
  """One line per case (`CaseMetrics.row`), NaN written as 'nan'."""
  records = [r.row() for r in rows]
  fields = list(records[0]) if records else ["case"]
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    writer.writerows(records)


def _check_spacing(spacing, ndim: int) -> np.ndarray:
  spacing = np.asarray(spacing, np.float64).reshape(-1)
  if spacing.size != ndim or np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
    raise ValueError(f"spacing {spacing.tolist()} must be {ndim} positive mm sizes")
  return spacing


def _nanmean(values) -> float:
  values = np.asarray(values, np.float64)
  if values.size == 0 or np.all(np.isnan(values)):
    return float("nan")
  return float(np.nanmean(values))
