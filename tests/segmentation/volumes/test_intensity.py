"""Tests for volumes/intensity.py against numpy computed by hand."""

import numpy as np
import pytest

from medjax.engine.errors import InputError
from medjax.segmentation.data.errors import DataError
from medjax.segmentation.volumes import intensity

RNG = np.random.default_rng(0)


def test_mri_zscore_is_per_volume_and_per_channel():
  # Channel scales like the hippocampus files: uint8-range and 1e6-range.
  image = np.stack([RNG.integers(0, 113, (5, 6, 7)).astype(np.uint8).astype(np.float32),
                    RNG.uniform(0, 1.7e6, (5, 6, 7)).astype(np.float32)], -1)
  out = intensity.normalise(image, "mri")
  assert out.dtype == np.float32 and out.shape == image.shape
  for c in range(2):
    x = image[..., c].astype(np.float64)
    np.testing.assert_allclose(out[..., c], (x - x.mean()) / x.std(), rtol=1e-5, atol=1e-5)


def test_mri_zscore_on_a_uint8_3d_array():
  image = RNG.integers(0, 256, (4, 5, 6)).astype(np.uint8)
  out = intensity.normalise(image, "mri")
  x = image.astype(np.float64)
  assert out.shape == image.shape
  np.testing.assert_allclose(out, (x - x.mean()) / x.std(), rtol=1e-5, atol=1e-5)


def test_mri_zscore_with_a_mask_uses_masked_voxels_and_zeroes_the_rest():
  image = RNG.uniform(10, 20, (6, 6, 6, 1)).astype(np.float32)
  mask = np.zeros((6, 6, 6), bool)
  mask[1:4, 2:5, :] = True
  out = intensity.normalise(image, "mri", mask=mask)
  inside = image[..., 0][mask].astype(np.float64)
  np.testing.assert_allclose(out[..., 0][mask], (inside - inside.mean()) / inside.std(),
                             rtol=1e-5, atol=1e-5)
  assert np.all(out[..., 0][~mask] == 0)


def test_constant_volume_gives_zeros_not_nan():
  out = intensity.normalise(np.full((3, 4, 5, 1), 7.0, np.float32), "mri")
  assert np.all(out == 0)
  stats = {"percentile_00_5": 7.0, "percentile_99_5": 7.0, "mean": 7.0, "std": 0.0}
  assert np.all(intensity.normalise(np.full((3, 4, 5, 1), 9.0), "ct", stats) == 0)


def test_ct_clips_to_the_percentiles_then_standardises():
  image = RNG.uniform(-1500, 2500, (5, 5, 5, 1)).astype(np.float32)
  stats = {"percentile_00_5": -1000.0, "percentile_99_5": 1800.0, "mean": 40.0, "std": 350.0}
  out = intensity.normalise(image, "ct", stats)
  expected = (np.clip(image.astype(np.float64), -1000, 1800) - 40) / 350
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
  assert out.min() == pytest.approx((-1000 - 40) / 350) and out.max() == pytest.approx(
      (1800 - 40) / 350)


def test_ct_statistics_per_channel():
  image = RNG.uniform(-10, 10, (4, 4, 4, 2))
  stats = {"percentile_00_5": [-5, -1], "percentile_99_5": [5, 1], "mean": [1, 0],
           "std": [2, 0.5]}
  out = intensity.normalise(image, "ct", stats)
  np.testing.assert_allclose(out[..., 0], (np.clip(image[..., 0], -5, 5) - 1) / 2, rtol=1e-5)
  np.testing.assert_allclose(out[..., 1], np.clip(image[..., 1], -1, 1) / 0.5, rtol=1e-5)


def test_none_and_bad_input():
  image = RNG.integers(0, 9, (2, 3, 4, 1)).astype(np.int16)
  out = intensity.normalise(image, "none")
  assert out.dtype == np.float32 and np.array_equal(out, image)
  with pytest.raises(InputError, match="normalisation must be one of"):
    intensity.normalise(image, "zscore")
  with pytest.raises(InputError, match="foreground_stats"):
    intensity.normalise(image, "ct")


def test_foreground_stats_match_numpy_when_nothing_is_subsampled():
  images = [RNG.normal(100, 20, (6, 7, 8)) for _ in range(3)]
  labels = [RNG.integers(0, 3, (6, 7, 8)) for _ in range(3)]
  stats = intensity.foreground_stats(images, labels)  # each case has < 10000 voxels
  values = np.concatenate([im[lab > 0] for im, lab in zip(images, labels)])
  assert stats["voxels"] == len(values)
  assert stats["mean"] == [pytest.approx(values.mean())]
  assert stats["std"] == [pytest.approx(values.std())]
  assert stats["percentile_00_5"] == [pytest.approx(np.percentile(values, 0.5))]
  assert stats["percentile_99_5"] == [pytest.approx(np.percentile(values, 99.5))]
  assert stats["min"] == [values.min()] and stats["max"] == [values.max()]


def test_foreground_stats_subsample_each_case_from_its_foreground():
  image = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
  label = np.zeros((10, 10, 10), np.uint8)
  label[:5] = 1  # foreground values 0..499
  stats = intensity.foreground_stats([image, image + 5000], [label, label],
                                     max_voxels_per_case=50, rng=np.random.default_rng(3))
  assert stats["voxels"] == 100
  assert 0 <= stats["min"][0] and stats["max"][0] <= 5499
  assert stats["median"][0] > 499 and stats["median"][0] < 5000  # 50 from each case
  with pytest.raises(DataError, match="no foreground"):
    intensity.foreground_stats([image], [np.zeros_like(label)])
