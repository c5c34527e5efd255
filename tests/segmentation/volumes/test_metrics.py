import csv
import itertools
import math

import numpy as np
import pytest

from medjax.segmentation.volumes import metrics

_LO, _HI, _IN_LO, _IN_HI = 5, 14, 7, 12  # truth cube 5..14, prediction cube 7..12


def _cubes(shape=(20, 20, 20)):
  truth, pred = np.zeros(shape, bool), np.zeros(shape, bool)
  truth[_LO:_HI + 1, _LO:_HI + 1, _LO:_HI + 1] = True
  pred[_IN_LO:_IN_HI + 1, _IN_LO:_IN_HI + 1, _IN_LO:_IN_HI + 1] = True
  return pred, truth


def _cube_distances(spacing):
  """Surface distances of the concentric cubes from their geometry (no scipy):
  an inner surface voxel's nearest outer-surface voxel is straight across the
  nearest face; an outer one's nearest inner voxel is its clamp onto the inner cube."""
  s = np.asarray(spacing, np.float64)
  inner = [p for p in itertools.product(range(_IN_LO, _IN_HI + 1), repeat=3)
           if any(c in (_IN_LO, _IN_HI) for c in p)]
  outer = [p for p in itertools.product(range(_LO, _HI + 1), repeat=3)
           if any(c in (_LO, _HI) for c in p)]
  d_inner = [min(min(c - _LO, _HI - c) * s[a] for a, c in enumerate(p)) for p in inner]
  d_outer = [np.linalg.norm((np.array(p) - np.clip(p, _IN_LO, _IN_HI)) * s) for p in outer]
  return np.array(d_inner), np.array(d_outer)


def _brute_surface(mask, connectivity):
  """Foreground voxels with a neighbour (6 or 26) in the background or off the grid."""
  padded = np.pad(mask, 1)
  offsets = [o for o in itertools.product((-1, 0, 1), repeat=3)
             if any(o) and (connectivity == 3 or sum(map(abs, o)) == 1)]
  out = np.zeros_like(mask)
  for idx in zip(*np.nonzero(mask)):
    out[idx] = any(not padded[tuple(i + 1 + d for i, d in zip(idx, o))] for o in offsets)
  return out


def _brute_metrics(pred, truth, spacing, tolerance, connectivity):
  """HD95 and NSD from all pairwise distances between surface voxel centres."""
  sp, st = (np.argwhere(_brute_surface(m, connectivity)) * spacing for m in (pred, truth))
  pairwise = np.linalg.norm(sp[:, None] - st[None], axis=-1)
  d_pred, d_truth = pairwise.min(1), pairwise.min(0)
  hd95 = max(np.percentile(d_pred, 95), np.percentile(d_truth, 95))
  nsd = (np.sum(d_pred <= tolerance) + np.sum(d_truth <= tolerance)) / (
      d_pred.size + d_truth.size)
  return hd95, nsd


def test_concentric_cubes_hand_values():
  pred, truth = _cubes()
  d_pred, d_truth = metrics.surface_distances(pred, truth, (1, 1, 1))
  assert d_pred.size == 6**3 - 4**3 and d_truth.size == 10**3 - 8**3
  np.testing.assert_allclose(d_pred, 2.0)  # every inner face is 2 voxels from the outer one
  assert d_truth.min() == 2.0 and d_truth.max() == pytest.approx(math.sqrt(12))
  m = metrics.binary_metrics(pred, truth, (1, 1, 1), tolerance_mm=2.0)
  assert m["dice"] == pytest.approx(2 * 216 / (216 + 1000))
  # Within 2 mm: all 152 inner surface voxels, and the 6 * 6 * 6 outer ones facing them.
  assert m["nsd"] == pytest.approx((152 + 216) / (152 + 488))
  assert m["volume_error_ml"] == pytest.approx((216 - 1000) / 1000)
  assert m["relative_volume_error"] == pytest.approx((216 - 1000) / 1000)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.5, 0.5), (0.7, 3.0, 1.0)])
def test_concentric_cubes_anisotropic_spacing(spacing):
  pred, truth = _cubes()
  d_pred, d_truth = metrics.surface_distances(pred, truth, spacing)
  ref_pred, ref_truth = _cube_distances(spacing)
  np.testing.assert_allclose(np.sort(d_pred), np.sort(ref_pred), rtol=1e-12)
  np.testing.assert_allclose(np.sort(d_truth), np.sort(ref_truth), rtol=1e-12)
  m = metrics.binary_metrics(pred, truth, spacing, tolerance_mm=1.5)
  assert m["hd95_mm"] == pytest.approx(
      max(np.percentile(ref_pred, 95), np.percentile(ref_truth, 95)))
  assert m["nsd"] == pytest.approx(
      (np.sum(ref_pred <= 1.5) + np.sum(ref_truth <= 1.5)) / (ref_pred.size + ref_truth.size))
  assert m["volume_error_ml"] == pytest.approx((216 - 1000) * np.prod(spacing) / 1000)
  scaled = metrics.binary_metrics(pred, truth, np.multiply(spacing, 3.0), tolerance_mm=4.5)
  assert scaled["hd95_mm"] == pytest.approx(3 * m["hd95_mm"])  # mm scale with the voxels
  assert scaled["nsd"] == pytest.approx(m["nsd"])


@pytest.mark.parametrize("connectivity", [1, 3])
def test_random_masks_match_brute_force(connectivity):
  rng = np.random.default_rng(0)
  spacing = np.array([1.3, 0.8, 2.1])
  for _ in range(4):
    pred = rng.random((6, 5, 4)) < 0.5
    truth = rng.random((6, 5, 4)) < 0.4
    np.testing.assert_array_equal(metrics.surface(pred, connectivity),
                                  _brute_surface(pred, connectivity))
    for tolerance in (0.9, 2.0):
      m = metrics.binary_metrics(pred, truth, spacing, tolerance, connectivity)
      hd95, nsd = _brute_metrics(pred, truth, spacing, tolerance, connectivity)
      assert m["hd95_mm"] == pytest.approx(hd95) and m["nsd"] == pytest.approx(nsd)
      assert m["dice"] == pytest.approx(2 * np.sum(pred & truth) / (pred.sum() + truth.sum()))


def test_empty_conventions_and_aggregate():
  empty, cube = np.zeros((6, 6, 6), bool), _cubes((16, 16, 16))[1][:6, :6, :6]
  both = metrics.binary_metrics(empty, empty, (1, 1, 1))
  assert (both["dice"], both["hd95_mm"], both["nsd"], both["volume_error_ml"],
          both["relative_volume_error"]) == (1.0, 0.0, 1.0, 0.0, 0.0)
  missed = metrics.binary_metrics(empty, cube, (1, 2, 1))
  assert missed["dice"] == 0.0 and missed["nsd"] == 0.0 and np.isnan(missed["hd95_mm"])
  assert missed["relative_volume_error"] == -1.0
  assert missed["volume_error_ml"] == pytest.approx(-cube.sum() * 2 / 1000)
  spurious = metrics.binary_metrics(cube, empty, (1, 1, 1))
  assert np.isnan(spurious["relative_volume_error"]) and np.isnan(spurious["hd95_mm"])
  rows = [metrics.case_metrics("a", cube, cube, (1, 1, 1), 2),
          metrics.case_metrics("b", empty, cube, (1, 1, 1), 2)]
  agg = metrics.aggregate(rows)
  assert agg["num_cases"] == 2 and agg["dice_class_1"] == 0.5 and agg["nsd_mean"] == 0.5
  assert agg["hd95_mm_class_1"] == 0.0 and agg["num_undefined_hd95_mm_class_1"] == 1
  assert metrics.aggregate([]) == {"num_cases": 0.0}


def test_case_metrics_multiclass_table_and_csv(tmp_path):
  rng = np.random.default_rng(1)
  truth = rng.integers(0, 3, (5, 6, 4))
  pred = np.where(rng.random(truth.shape) < 0.8, truth, rng.integers(0, 3, truth.shape))
  row = metrics.case_metrics("case_7", pred, truth, (1.0, 1.0, 2.5), num_classes=3)
  for k in (1, 2):
    p, t = pred == k, truth == k
    assert row.values[f"dice_class_{k}"] == pytest.approx(2 * np.sum(p & t) / (p.sum() +
                                                                                t.sum()))
    assert row.values[f"volume_error_ml_class_{k}"] == pytest.approx(
        (p.sum() - t.sum()) * 2.5 / 1000)
  assert row.values["dice_mean"] == pytest.approx(
      (row.values["dice_class_1"] + row.values["dice_class_2"]) / 2)
  assert "dice_class_0" not in row.values  # background is not scored
  other = metrics.case_metrics("case_8", truth, truth, (1.0, 1.0, 2.5), num_classes=3)
  agg = metrics.aggregate([row, other])
  assert agg["dice_class_2"] == pytest.approx((row.values["dice_class_2"] + 1.0) / 2)
  path = tmp_path / "cases.csv"
  metrics.write_csv([row, other], str(path))
  with open(path, encoding="utf-8") as f:
    lines = list(csv.DictReader(f))
  assert [r["case"] for r in lines] == ["case_7", "case_8"]
  assert float(lines[0]["hd95_mm_class_1"]) == pytest.approx(row.values["hd95_mm_class_1"])
  with pytest.raises(ValueError, match="case_7"):
    metrics.case_metrics("case_7", pred[:4], truth, (1, 1, 1), 3)
  with pytest.raises(ValueError, match="spacing"):
    metrics.binary_metrics(pred == 1, truth == 1, (1, 1))


def test_matches_monai_when_installed():
  monai_metrics = pytest.importorskip("monai.metrics")
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(2)
  pred, truth = rng.random((2, 8, 7, 6)) < 0.5
  spacing = (1.2, 0.9, 2.0)

  def onehot(m):
    return torch.as_tensor(np.stack([~m, m])[None].astype(np.float32))

  m = metrics.binary_metrics(pred, truth, spacing, tolerance_mm=1.5)
  hd = monai_metrics.compute_hausdorff_distance(onehot(pred), onehot(truth), percentile=95,
                                                spacing=spacing)
  nsd = monai_metrics.compute_surface_dice(onehot(pred), onehot(truth), [1.5],
                                           spacing=spacing)
  assert m["hd95_mm"] == pytest.approx(float(hd.reshape(-1)[0]), rel=1e-5)
  assert m["nsd"] == pytest.approx(float(nsd.reshape(-1)[0]), rel=1e-5)
