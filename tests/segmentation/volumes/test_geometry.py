"""Tests for volumes/geometry.py: reorient, crop, resample and their inverse."""

import nibabel as nib
import numpy as np
import pytest

from medjax.segmentation.data.errors import DataError
from medjax.segmentation.volumes import geometry
from medjax.segmentation.volumes.volume import Volume

# File axes (i, j, k) -> world: i runs to -A (0.7 mm), j to +S (0.7 mm),
# k to -R (2.5 mm): a flipped, permuted, anisotropic (LPS-like) grid.
ODD_AFFINE = np.array([[0.0, 0.0, -2.5, 40.0],
                       [-0.7, 0.0, 0.0, 12.0],
                       [0.0, 0.7, 0.0, -30.0],
                       [0.0, 0.0, 0.0, 1.0]])


def _ellipsoid(shape, affine, centre, radii):
  """Label 1 inside a world-space ellipsoid (label 2 in its +S half), on a grid."""
  idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
  world = idx @ affine[:3, :3].T + affine[:3, 3]
  d = (((world - centre) / radii) ** 2).sum(-1)
  label = (d <= 1).astype(np.uint8)
  label[(d <= 1) & (world[..., 2] > centre[2])] = 2
  return label


def _case(shape=(30, 34, 14), affine=ODD_AFFINE, seed=0):
  """A scan that is zero outside a box, and an ellipsoid label inside it."""
  rng = np.random.default_rng(seed)
  image = np.zeros(shape, np.float32)
  image[2:-3, 4:-2, 1:-2] = rng.uniform(1, 2, (shape[0] - 5, shape[1] - 6, shape[2] - 3))
  centre = affine[:3, :3] @ (np.asarray(shape) / 2) + affine[:3, 3]
  label = _ellipsoid(shape, affine, centre, radii=(11.0, 6.0, 7.0))
  return Volume(image, affine, None, "scan.nii.gz"), label


def test_reorientation_matches_nibabel_as_closest_canonical():
  volume, _ = _case()
  image, _, record = geometry.forward(volume, None, None, crop=False)
  reference = nib.as_closest_canonical(nib.Nifti1Image(volume.array, volume.affine))
  np.testing.assert_allclose(record.canonical_affine, reference.affine, atol=1e-12)
  np.testing.assert_array_equal(image[..., 0], np.asanyarray(reference.dataobj))
  assert nib.aff2axcodes(record.canonical_affine) == ("R", "A", "S")
  assert record.spacing == pytest.approx((2.5, 0.7, 0.7))


def test_crop_is_the_nonzero_bounding_box_in_canonical_order():
  volume, _ = _case()
  _, _, record = geometry.forward(volume, None, None)
  # File box: i 2..27, j 4..32, k 1..12; canonical axes are (-k, -i, j).
  assert record.bbox == ((14 - 12, 14 - 1), (30 - 27, 30 - 2), (4, 32))
  assert record.cropped_shape == (11, 25, 28) == record.resampled_shape
  empty = Volume(np.zeros((5, 6, 7), np.float32), np.eye(4))
  _, _, record = geometry.forward(empty, None, None)
  assert record.cropped_shape == (5, 6, 7)


def test_forward_then_inverse_recovers_the_label_exactly_without_resampling():
  volume, label = _case()
  image, pre_label, record = geometry.forward(volume, label, (2.5, 0.7, 0.7))
  assert record.resampled_shape == record.cropped_shape and image.dtype == np.float32
  assert pre_label.dtype == np.uint8 and image.shape == (*pre_label.shape, 1)
  back = geometry.inverse(pre_label, record)
  assert back.shape == label.shape
  np.testing.assert_array_equal(back, label)


def test_matching_spacing_leaves_voxels_untouched():
  volume = Volume(np.random.default_rng(1).uniform(1, 5, (6, 7, 8, 2)).astype(np.float32),
                  np.diag([1.0, 1.0, 1.0, 1.0]))
  image, _, record = geometry.forward(volume, None, (1.0004, 1.0, 0.9996))
  np.testing.assert_array_equal(image, volume.array)
  assert record.resampled_shape == (6, 7, 8)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_forward_then_inverse_with_resampling_differs_only_at_boundaries(mode):
  volume, label = _case()
  _, pre_label, record = geometry.forward(volume, label, (1.0, 1.0, 1.0), label_mode=mode)
  expected = tuple(int(round(n * s)) for n, s in zip(record.cropped_shape, record.spacing))
  assert record.resampled_shape == expected == pre_label.shape
  assert set(np.unique(pre_label)) == {0, 1, 2}
  back = geometry.inverse(pre_label, record)
  assert back.shape == label.shape
  wrong = (back != label).sum()
  assert 0 < wrong < 0.15 * (label > 0).sum()


def test_preprocessed_affine_places_voxels_where_the_original_grid_has_them():
  # 1 mm -> 2 mm: preprocessed voxel v is the centre of a 2x2x2 block of file voxels.
  affine = np.array([[-1.0, 0, 0, 5], [0, 0, 1.0, -7], [0, -1.0, 0, 3], [0, 0, 0, 1]])
  image = np.zeros((12, 10, 14), np.float32)
  image[2:10, 2:8, 4:12] = 1.0
  _, _, record = geometry.forward(Volume(image, affine), None, (2.0, 2.0, 2.0))
  assert record.resampled_shape == (4, 4, 3)
  pre = geometry.preprocessed_affine(record)
  np.testing.assert_allclose(np.linalg.norm(pre[:3, :3], axis=0), 2.0)
  # Canonical voxel -> file voxel (a flip/permutation), from the two affines.
  canonical_to_file = np.linalg.inv(affine) @ record.canonical_affine
  for v in [(0, 0, 0), (3, 2, 1), (1, 3, 2)]:
    lo = np.asarray([b[0] for b in record.bbox]) + 2 * np.asarray(v)
    block = [lo + np.asarray(d) for d in np.ndindex(2, 2, 2)]
    file_voxels = [canonical_to_file[:3, :3] @ c + canonical_to_file[:3, 3] for c in block]
    world = np.mean([affine[:3, :3] @ f + affine[:3, 3] for f in file_voxels], axis=0)
    np.testing.assert_allclose(pre[:3, :3] @ v + pre[:3, 3], world, atol=1e-9)


def test_linear_resampling_reproduces_a_linear_world_ramp():
  # A ramp in world mm sampled on the file grid; order-1 resampling must give the
  # same ramp at the positions preprocessed_affine assigns to the new voxels.
  shape, gradient = (16, 18, 8), np.array([0.3, -0.2, 0.5])
  idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
  world = idx @ ODD_AFFINE[:3, :3].T + ODD_AFFINE[:3, 3]
  ramp = (world @ gradient + 100).astype(np.float32)
  image, _, record = geometry.forward(Volume(ramp, ODD_AFFINE), None, (1.25, 1.4, 1.4),
                                      image_order=1)
  pre = geometry.preprocessed_affine(record)
  out = np.stack(np.meshgrid(*[np.arange(n) for n in image.shape[:3]], indexing="ij"), -1)
  expected = (out @ pre[:3, :3].T + pre[:3, 3]) @ gradient + 100
  inner = tuple(slice(1, -1) for _ in range(3))  # edge voxels clamp (mode 'nearest')
  np.testing.assert_allclose(image[..., 0][inner], expected[inner], atol=1e-3)


def test_inverse_of_probabilities_fills_background_outside_the_crop():
  volume, label = _case()
  _, pre_label, record = geometry.forward(volume, label, None)
  probs = np.eye(3, dtype=np.float32)[pre_label]
  back = geometry.inverse(probs, record)
  assert back.shape == (*label.shape, 3)
  np.testing.assert_allclose(back.sum(-1), 1.0, atol=1e-6)
  np.testing.assert_array_equal(back.argmax(-1), label)
  outside = np.ones(label.shape, bool)
  outside[2:-3, 4:-2, 1:-2] = False
  np.testing.assert_array_equal(back[outside], np.eye(3)[0][None].repeat(outside.sum(), 0))


def test_grid_record_json_round_trip():
  volume, label = _case()
  _, _, record = geometry.forward(volume, label, (1.0, 1.0, 1.0))
  again = geometry.GridRecord.from_json(record.to_json())
  assert again == record
  np.testing.assert_allclose(again.canonical_affine, record.canonical_affine)


def test_label_on_another_grid_is_a_data_error_naming_the_file():
  volume, label = _case()
  with pytest.raises(DataError, match="scan.nii.gz"):
    geometry.forward(volume, label[:-1], None)
  with pytest.raises(ValueError, match="spatial shape"):
    _, _, record = geometry.forward(volume, label, None)
    geometry.inverse(np.zeros((3, 3, 3)), record)
