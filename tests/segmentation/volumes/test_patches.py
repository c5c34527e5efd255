import collections
import itertools

import numpy as np
import pytest

from medjax.engine.errors import InputError
from medjax.segmentation.volumes import patches


def coordinate_image(shape):
  """Channel c holds 1 + the voxel's index along axis c (0 only in padding)."""
  grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
  return np.stack(grids, -1).astype(np.float32) + 1


def corner(patch):
  """The patch's lower corner in volume coordinates, read off a coordinate image."""
  inside = np.argwhere(patch["valid"] > 0)[0]
  return patch["image"][tuple(inside)].astype(int) - 1 - inside


def reference(image, label, start, size):
  """Zero-pad generously on every side, then plain numpy slicing."""
  pad = [(16, 16)] * len(size)
  window = tuple(slice(s + 16, s + 16 + n) for s, n in zip(start, size))
  padded_image = np.pad(image, pad + [(0, 0)])
  valid = np.pad(np.ones(label.shape, np.float32), pad)
  return padded_image[window], np.pad(label, pad)[window], valid[window]


@pytest.mark.parametrize("start", [(0, 0, 0), (3, 1, 2), (-2, 4, -1), (5, -3, 3), (9, 0, 0)])
def test_extract_matches_padded_numpy_slicing(start):
  rng = np.random.default_rng(0)
  image = rng.normal(size=(6, 5, 4, 2)).astype(np.float32)
  label = rng.integers(0, 3, (6, 5, 4))
  out = patches.extract(image, label, start, (4, 4, 3))
  want_image, want_label, want_valid = reference(image, label, start, (4, 4, 3))
  np.testing.assert_array_equal(out["image"], want_image)
  np.testing.assert_array_equal(out["label"], want_label)
  np.testing.assert_array_equal(out["valid"], want_valid)
  assert out["image"].dtype == np.float32 and out["label"].dtype == np.int32
  assert out["valid"].dtype == np.float32


def test_class_locations_subsample_and_skip_absent():
  label = np.zeros((6, 6, 6), np.int16)
  label[:3, :3, :3] = 1  # 27 voxels
  label[5, 5, 5] = 3  # class 2 absent
  locs = patches.class_locations(label, 4, max_per_class=10, rng=np.random.default_rng(1))
  assert sorted(locs) == [1, 3]
  assert locs[1].shape == (10, 3) and len(np.unique(locs[1], axis=0)) == 10
  assert np.all(label[tuple(locs[1].T)] == 1)
  np.testing.assert_array_equal(locs[3], [[5, 5, 5]])
  full = patches.class_locations(label, 4)
  np.testing.assert_array_equal(full[1], np.argwhere(label == 1))


def test_foreground_fraction_one_always_contains_foreground():
  shape, size = (12, 10, 9), (4, 4, 4)
  label = np.zeros(shape, np.int32)
  label[0:2, 0:2, 0:2] = 1  # a corner blob
  label[11, 9, 8] = 2  # one voxel in the opposite corner
  image = coordinate_image(shape)
  locs = patches.class_locations(label, 3)
  rng = np.random.default_rng(2)
  chosen = collections.Counter()
  for i in range(200):
    p = patches.sample_patch(image, label, size, rng, foreground_fraction=1.0, locations=locs)
    present = set(np.unique(p["label"])) - {0}
    assert present
    chosen.update(present)
    if i >= 20:
      continue
    # Foreground patches still match plain slicing at their corner, and stay inside.
    start = corner(p)
    want_image, want_label, _ = reference(image, label, start, size)
    np.testing.assert_array_equal(p["label"], want_label)
    np.testing.assert_array_equal(p["image"], want_image)
    assert np.all(p["valid"] == 1)
  assert 60 < chosen[2] < 140 and chosen[1] > 60  # classes chosen equally, not by size


@pytest.mark.parametrize("shape", [(6, 5, 4), (2, 6, 4)])  # the second is smaller than the patch
def test_foreground_fraction_zero_is_uniform_over_offsets(shape):
  size = (4, 4, 4)
  label = np.zeros(shape, np.int32)
  label[0, 0, 0] = 1  # foreground that must not attract patches
  image = coordinate_image(shape)
  low, high = patches.start_range(shape, size)
  offsets = list(itertools.product(*[range(lo, hi + 1) for lo, hi in zip(low, high)]))
  rng = np.random.default_rng(3)
  draws = 100 * len(offsets)
  counts = collections.Counter()
  for i in range(draws):
    p = patches.sample_patch(image, label, size, rng, foreground_fraction=0.0)
    start = tuple(corner(p))
    counts[start] += 1
    if i >= 20:
      continue
    want_image, want_label, want_valid = reference(image, label, start, size)
    np.testing.assert_array_equal(p["valid"], want_valid)
    np.testing.assert_array_equal(p["label"], want_label)
    np.testing.assert_array_equal(p["image"], want_image)
  assert set(counts) == set(offsets)
  expected = draws / len(offsets)
  chi2 = sum((counts[o] - expected) ** 2 / expected for o in offsets)
  assert chi2 < 3 * len(offsets) + 10  # far above the chi-square 99.99% point; fixed seed


def test_deterministic_given_rng_and_small_volume_is_padded():
  rng = np.random.default_rng(4)
  image = rng.normal(size=(3, 8, 5, 1)).astype(np.float32)
  label = (rng.random((3, 8, 5)) < 0.1).astype(np.int32)
  a = [patches.sample_patch(image, label, (6, 4, 6), np.random.default_rng(9), 0.5)
       for _ in range(2)]
  for k in ("image", "label", "valid"):
    np.testing.assert_array_equal(a[0][k], a[1][k])
  assert a[0]["image"].shape == (6, 4, 6, 1) and a[0]["label"].shape == (6, 4, 6)
  # Axes 0 and 2 are shorter than the patch: exactly the volume's extent is valid.
  assert a[0]["valid"].sum(axis=(1,)).max() == 4 and a[0]["valid"].sum() == 3 * 4 * 5


def test_rejects_bad_arguments():
  image, label = np.zeros((4, 4, 4, 1)), np.zeros((4, 4, 4), np.int32)
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match="do not agree"):
    patches.sample_patch(image, label, (2, 2), rng)
  with pytest.raises(InputError, match="foreground_fraction"):
    patches.sample_patch(image, label, (2, 2, 2), rng, foreground_fraction=1.5)
  # Foreground wanted but none present: falls back to a uniform patch.
  p = patches.sample_patch(image, label, (2, 2, 2), rng, foreground_fraction=1.0)
  assert p["valid"].sum() == 8
