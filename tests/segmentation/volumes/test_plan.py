"""Tests for volumes/plan.py on synthetic fingerprints with hand-checked outcomes."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.engine.errors import InputError
from medjax.segmentation import unet
from medjax.segmentation.volumes import plan
from medjax.segmentation.volumes.volume import Volume


def _fp(spacings, cropped, shapes=None, modalities=("MRI",), channels=1, classes=3):
  """A fingerprint dict as `plan.fingerprint` writes it, from per-case lists."""
  shapes = cropped if shapes is None else shapes
  cases = [{"path": f"case{i}", "spacing": list(s), "shape": list(n), "cropped_shape": list(c)}
           for i, (s, n, c) in enumerate(zip(spacings, shapes, cropped))]
  return {"num_cases": len(cases), "num_classes": classes, "channels": channels,
          "modalities": list(modalities), "cases": cases,
          "intensity": {"mean": [1.0]}, "class_fraction": None}


def _iso(n=20, shape=(35, 50, 35)):
  return _fp([(1.0, 1.0, 1.0)] * n, [shape] * n)


def test_isotropic_median_shape_becomes_a_poolable_patch():
  p = plan.make_plan(_iso(), memory_mb=8192, max_batch=64)
  # min axis 35: 35/8 = 4.4 >= 4 but 35/16 < 4 -> 3 pools, patch multiple of 8.
  assert p["num_pools"] == 3 and p["features"] == [32, 64, 128, 256]
  assert p["patch_size"] == [40, 56, 40] and p["target_spacing"] == [1.0, 1.0, 1.0]
  assert p["normalisation"] == "mri" and p["intensity"] is None


def test_depth_and_features_are_capped():
  p = plan.make_plan(_fp([(1.0,) * 3] * 4, [(200, 200, 200)] * 4), memory_mb=1e6)
  assert p["num_pools"] == 4 and p["features"] == [32, 64, 128, 256, 320]
  assert p["patch_size"] == [208, 208, 208]  # 200 rounded up to a multiple of 16
  assert plan.features_for(7) == (32, 64, 128, 256, 320, 320, 320)


def test_median_shape_is_taken_after_resampling_to_the_target_spacing():
  # Half the cases at 0.5 mm (60 voxels), half at 1 mm (30): median spacing 0.75 mm.
  fp = _fp([(0.5,) * 3] * 2 + [(1.0,) * 3] * 2, [(60,) * 3] * 2 + [(30,) * 3] * 2)
  p = plan.make_plan(fp, memory_mb=1e5)
  assert p["target_spacing"] == [0.75] * 3
  assert p["median_shape"] == [40.0] * 3 and p["patch_size"] == [40, 40, 40]


def test_anisotropic_axis_gets_the_10th_percentile_spacing():
  spacings = [(0.8, 0.8, 5.0)] * 8 + [(0.8, 0.8, 2.0)] * 2
  p = plan.make_plan(_fp(spacings, [(300, 300, 20)] * 10), memory_mb=1e5)
  # Median z = 5 > 3 * 0.8 and 20 * 3 < 300 voxels: z gets percentile 10 = 2.0.
  assert p["target_spacing"][:2] == [0.8, 0.8]
  assert p["target_spacing"][2] == pytest.approx(2.0)


def test_anisotropy_rule_needs_both_coarse_spacing_and_few_voxels():
  spacings = [(0.8, 0.8, 5.0)] * 8 + [(0.8, 0.8, 2.0)] * 2
  many_slices = plan.target_spacing(spacings, [(300, 300, 200)] * 10)
  np.testing.assert_allclose(many_slices, [0.8, 0.8, 5.0])
  mild = plan.target_spacing([(1.0, 1.0, 2.5)] * 5 + [(1.0, 1.0, 1.0)], [(300, 300, 20)] * 6)
  np.testing.assert_allclose(mild, [1.0, 1.0, 2.5])
  # The percentile never goes finer than the other axes.
  fine = plan.target_spacing([(1.0, 1.0, 5.0)] * 8 + [(1.0, 1.0, 0.5)] * 2, [(300, 300, 20)] * 10)
  np.testing.assert_allclose(fine, [1.0, 1.0, 1.0])


def test_a_smaller_memory_budget_shrinks_the_patch_until_it_fits():
  big = plan.make_plan(_iso(shape=(160, 192, 128)), memory_mb=1e6)
  assert big["patch_size"] == [160, 192, 128]
  small = plan.make_plan(_iso(shape=(160, 192, 128)), memory_mb=4000, min_batch=2)
  patch, multiple = small["patch_size"], 2 ** small["num_pools"]
  assert math.prod(patch) < math.prod(big["patch_size"])
  assert all(p % multiple == 0 and p <= b for p, b in zip(patch, big["patch_size"]))
  need = plan.estimate_memory_mb(patch, small["features"], 2, 1, 3)
  assert need <= 4000
  # The shrinking stops at the first patch that fits: a budget of exactly its
  # estimate keeps it, a slightly smaller one shrinks further.
  same = plan.make_plan(_iso(shape=(160, 192, 128)), memory_mb=need)
  assert same["patch_size"] == patch
  less = plan.make_plan(_iso(shape=(160, 192, 128)), memory_mb=need - 0.01)
  assert math.prod(less["patch_size"]) < math.prod(patch)
  with pytest.raises(InputError, match="too small"):
    plan.make_plan(_iso(), memory_mb=0.1)


def test_batch_size_fits_memory_within_bounds():
  fp = _iso(n=1000)
  fixed = plan.estimate_memory_mb((40, 56, 40), (32, 64, 128, 256), 0, 1, 3)
  per = plan.estimate_memory_mb((40, 56, 40), (32, 64, 128, 256), 1, 1, 3) - fixed
  budget = fixed + 5.5 * per
  assert plan.make_plan(fp, memory_mb=budget, max_batch=64)["batch_size"] == 5
  assert plan.make_plan(fp, memory_mb=1e6, max_batch=12)["batch_size"] == 12
  # 20 cases: 5% of 20 * 35*50*35 voxels is 13.7% of one patch -> the minimum, 2.
  assert plan.make_plan(_iso(n=20), memory_mb=1e6, max_batch=64)["batch_size"] == 2
  # 200 cases: round(0.05 * 200 * 61250 / 89600) = 7 patches cover 5% of the data.
  assert plan.make_plan(_iso(n=200), memory_mb=1e6, max_batch=64)["batch_size"] == 7


def test_activation_term_of_the_memory_estimate():
  # (8,8,8) with features (32, 64): 512*32 + 64*64 = 20480 values per sample level sum.
  a0 = plan.estimate_memory_mb((8, 8, 8), (32, 64), 0)
  a2 = plan.estimate_memory_mb((8, 8, 8), (32, 64), 2)
  assert a2 - a0 == pytest.approx(2 * 20480 * 4 * plan.ACTIVATION_FACTOR / 2**20)


def test_parameter_count_is_close_to_the_real_unet():
  features, channels, classes = (8, 16, 32), 2, 3
  model = unet.UNet(num_classes=classes, spatial_dims=3, features=features)
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                             jnp.zeros((1, 8, 8, 8, channels))))
  real = sum(math.prod(x.shape) for x in jax.tree.leaves(shapes["params"]))
  assert plan._param_count(features, channels, classes) == pytest.approx(real, rel=0.02)


def test_ct_modality_selects_ct_normalisation_with_its_statistics():
  fp = _iso()
  fp["modalities"] = ["CT"]
  p = plan.make_plan(fp, memory_mb=8192)
  assert p["normalisation"] == "ct" and p["intensity"] == {"mean": [1.0]}


def test_nonzero_mask_is_suggested_when_the_crop_removes_much():
  fp = _fp([(1.0,) * 3] * 3, [(30, 30, 30)] * 3, shapes=[(40, 40, 40)] * 3)
  assert plan.make_plan(fp, memory_mb=8192)["use_nonzero_mask"]  # 42% of voxels kept
  assert not plan.make_plan(_iso(), memory_mb=8192)["use_nonzero_mask"]


def test_overrides_and_json():
  p = {"patch_size": [40, 56, 40], "features": [32, 64, 128, 256], "batch_size": 7,
       "target_spacing": [1.0, 0.78125, 2.5], "normalisation": "mri", "num_classes": 3}
  assert plan.as_overrides(p) == [
      "--config.task.patch_size=(40,56,40)",
      "--config.task.model.features=(32,64,128,256)",
      "--config.task.volume.target_spacing=(1.0,0.78125,2.5)",
      "--config.task.volume.normalisation=mri",
      "--config.task.num_classes=3",
      "--config.batch_size=7"]
  full = plan.make_plan(_iso(), memory_mb=8192)
  assert json.loads(plan.to_json(full)) == full


def test_fingerprint_of_volumes_on_a_permuted_grid():
  # File axes (i, j, k) are (S, R, A) with spacings (3, 1, 2) mm.
  affine = np.array([[0, 1.0, 0, 0], [0, 0, 2.0, 0], [3.0, 0, 0, 0], [0, 0, 0, 1]])
  rng = np.random.default_rng(0)
  cases = []
  for seed in range(2):
    image = np.zeros((4, 9, 6), np.float32)
    image[1:3, 2:8, :5] = rng.uniform(1, 2, (2, 6, 5))
    label = np.zeros((4, 9, 6), np.int16)
    label[1:3, 3:5 + seed, 1:4] = 1
    label[2, 6, 2] = 2
    cases.append((Volume(image, affine, None, f"im{seed}"), Volume(label, affine, None, "lb")))
  fp = plan.fingerprint(cases, num_classes=3)
  assert fp["cases"][0]["spacing"] == [1.0, 2.0, 3.0]  # canonical (R, A, S) order
  assert fp["cases"][0]["shape"] == [9, 6, 4] and fp["cases"][0]["cropped_shape"] == [6, 5, 2]
  counts = sum(np.bincount(c[1].array.ravel(), minlength=3) for c in cases)
  assert fp["class_voxels"] == counts.tolist() and fp["channels"] == 1
  assert fp["class_fraction"] == pytest.approx(counts / counts.sum())
  values = np.concatenate([c[0].array[c[1].array > 0] for c in cases])
  assert fp["intensity"]["mean"] == [pytest.approx(values.mean())]
  bad = [(cases[0][0], Volume(np.full((4, 9, 6), 3, np.int16), affine, None, "bad.nii.gz"))]
  with pytest.raises(InputError, match="bad.nii.gz"):
    plan.fingerprint(bad, num_classes=3)
