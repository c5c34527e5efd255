import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import segmentation as seg_configs
from medjax.engine.errors import InputError
from medjax.segmentation import transforms

# Jitted once per shape: faster than eager dispatch, and checks that each is jit-able.
flip = jax.jit(transforms.flip, static_argnames="axes")
rot90 = jax.jit(transforms.rot90)
rotate = jax.jit(transforms.rotate)
crop = jax.jit(transforms.crop, static_argnames="size")
random_crop = jax.jit(transforms.random_crop, static_argnames="size")


def make_batch(b=3, h=6, w=6, c=2, seed=0):
  rng = np.random.default_rng(seed)
  return {"image": rng.normal(size=(b, h, w, c)).astype(np.float32),
          "label": rng.integers(0, 4, (b, h, w)).astype(np.int32),
          "valid": (rng.random((b, h, w)) < 0.8).astype(np.float32),
          "_mask": np.ones(b, np.float32)}


def assert_each_example(out, batch, fn):
  """Every example's image, label and valid equal `fn(b, array)` of the input."""
  for k in ("image", "label", "valid"):
    for b in range(batch[k].shape[0]):
      np.testing.assert_allclose(np.asarray(out[k][b]), fn(b, batch[k][b]), atol=1e-5)


def test_flip_matches_numpy():
  batch = make_batch()
  flips = np.array([[False, False], [True, False], [True, True]])
  out = flip(batch, jnp.asarray(flips))

  def ref(b, x):
    for i, axis in enumerate((0, 1)):
      x = np.flip(x, axis) if flips[b, i] else x
    return x

  assert_each_example(out, batch, ref)
  np.testing.assert_array_equal(out["_mask"], batch["_mask"])


def test_flip_3d_depth_axis():
  rng = np.random.default_rng(0)
  batch = {"image": rng.normal(size=(2, 3, 4, 4, 1)), "label": rng.integers(0, 2, (2, 3, 4, 4))}
  out = flip(batch, jnp.array([[True], [False]]), axes=(1,))
  np.testing.assert_array_equal(out["label"][0], np.flip(batch["label"][0], 0))
  np.testing.assert_array_equal(out["label"][1], batch["label"][1])


def test_rot90_matches_numpy_and_needs_square():
  batch = make_batch(b=4)
  k = np.array([0, 1, 2, 3])
  assert_each_example(rot90(batch, jnp.asarray(k)), batch,
                      lambda b, x: np.rot90(x, k[b], axes=(0, 1)))
  with pytest.raises(ValueError, match="square"):
    transforms.random_rot90(make_batch(h=4, w=5), jax.random.key(0))


def test_random_flip_and_rot90_use_one_transform_per_example():
  batch = make_batch(b=8)
  out = jax.jit(lambda x: transforms.random_rot90(
      transforms.random_flip(x, jax.random.key(1)), jax.random.key(2)))(batch)
  seen = set()
  for b in range(8):  # find the dihedral transform that maps image b; label and valid agree
    matches = [(f, k) for f in (False, True) for k in range(4)
               if np.allclose(out["image"][b], np.rot90(batch["image"][b][:, ::-1] if f else
                                                        batch["image"][b], k))]
    assert len(matches) == 1
    f, k = matches[0]
    for key in ("label", "valid"):
      x = batch[key][b][:, ::-1] if f else batch[key][b]
      np.testing.assert_array_equal(out[key][b], np.rot90(x, k))
    seen.add(matches[0])
  assert len(seen) > 1  # not one transform for the whole batch


def test_rotate_zero_is_identity_and_90_is_rot90():
  batch = make_batch(h=7, w=7)
  out = rotate(batch, jnp.zeros(3))
  assert_each_example(out, batch, lambda b, x: x)
  out = rotate(batch, jnp.array([90.0, -90.0, 180.0]))
  turns = [1, -1, 2]
  assert_each_example(out, batch, lambda b, x: np.rot90(x, turns[b], axes=(0, 1)))
  assert out["label"].dtype == jnp.int32


def test_rotate_marks_outside_invalid_and_keeps_labels():
  batch = make_batch(b=1, h=9, w=9)
  batch["valid"] = np.ones_like(batch["valid"])
  out = rotate(batch, jnp.array([45.0]))
  valid = np.asarray(out["valid"][0])
  assert valid[0, 0] == 0 and valid[4, 4] == 1 and valid.sum() < 81
  assert set(np.unique(out["label"])) <= set(np.unique(batch["label"]))
  np.testing.assert_array_equal(out["label"][0, 4, 4], batch["label"][0, 4, 4])  # centre fixed


def test_crop_offsets_consistent():
  batch = make_batch(b=2, h=6, w=7)
  offsets = np.array([[0, 0], [2, 3]])
  out = crop(batch, jnp.asarray(offsets), (4, 3))
  assert_each_example(out, batch, lambda b, x: x[offsets[b, 0]:offsets[b, 0] + 4,
                                                 offsets[b, 1]:offsets[b, 1] + 3])


def test_random_crop_matches_some_window():
  batch = make_batch(b=4, h=8, w=9)
  batch["image"] = np.arange(4 * 8 * 9 * 2, dtype=np.float32).reshape(4, 8, 9, 2)
  out = random_crop(batch, jax.random.key(3), size=(5, 4))
  assert out["image"].shape == (4, 5, 4, 2) and out["label"].shape == (4, 5, 4)
  for b in range(4):
    y, x = np.argwhere(batch["image"][b, :, :, 0] == out["image"][b, 0, 0, 0])[0]
    np.testing.assert_array_equal(out["label"][b], batch["label"][b, y:y + 5, x:x + 4])
    np.testing.assert_array_equal(out["valid"][b], batch["valid"][b, y:y + 5, x:x + 4])
  with pytest.raises(ValueError, match="does not fit"):
    transforms.random_crop(batch, jax.random.key(0), (9, 4))


def test_random_intensity_is_affine_per_example():
  batch = make_batch(b=3)
  out = jax.jit(transforms.random_intensity)(batch, jax.random.key(0), 0.2, 0.1)
  for b in range(3):
    x, y = batch["image"][b].ravel(), np.asarray(out["image"][b]).ravel()
    s, t = np.polyfit(x, y, 1)
    assert 0.8 <= s <= 1.2 and -0.1 <= t <= 0.1
    np.testing.assert_allclose(y, s * x + t, atol=1e-5)
  np.testing.assert_array_equal(out["label"], batch["label"])


def test_compose_is_jittable_and_deterministic_per_key():
  augment = jax.jit(transforms.compose(
      transforms.random_flip, transforms.random_rot90,
      functools.partial(transforms.random_rotate, max_degrees=20.0),
      functools.partial(transforms.random_crop, size=(4, 4)),
      functools.partial(transforms.random_intensity, scale=0.1, shift=0.1)))
  batch = make_batch()
  a, b = augment(batch, jax.random.key(7)), augment(batch, jax.random.key(7))
  c = augment(batch, jax.random.key(8))
  for k in ("image", "label", "valid"):
    np.testing.assert_array_equal(a[k], b[k])
  assert a["image"].shape == (3, 4, 4, 2)
  assert not np.array_equal(a["image"], c["image"])


# 3D: (B, X, Y, Z, C) batches; the affine path is one N-D resampler. One compilation
# per function: the random ones take their float options as traced arguments.
def _host(fn):
  """`fn` under jit, with numpy outputs (no eager indexing of device arrays in tests)."""
  jitted = jax.jit(fn)
  return lambda *args: jax.tree.map(np.asarray, jitted(*args))


affine = _host(transforms.affine)
gamma = _host(transforms.gamma)
random_affine = _host(transforms.random_affine)
random_gamma = _host(transforms.random_gamma)
random_noise = _host(transforms.random_noise)


def make_batch_3d(b=3, shape=(5, 5, 5), c=2, seed=0):
  rng = np.random.default_rng(seed)
  return {"image": rng.normal(size=(b, *shape, c)).astype(np.float32),
          "label": rng.integers(0, 3, (b, *shape)).astype(np.int32),
          "valid": np.ones((b, *shape), np.float32), "_mask": np.ones(b, np.float32)}


def test_flip_defaults_to_every_spatial_axis_3d():
  batch = make_batch_3d(b=2, shape=(3, 4, 2))
  flips = np.array([[True, False, True], [False, True, False]])
  out = jax.jit(transforms.flip)(batch, jnp.asarray(flips))

  def ref(b, x):
    return np.flip(x, tuple(i for i in range(3) if flips[b, i]))

  assert_each_example(out, batch, ref)


def test_rot90_3d_in_plane_and_needs_square_plane():
  batch = make_batch_3d(b=4, shape=(4, 4, 3))
  k = np.array([0, 1, 2, 3])
  assert_each_example(rot90(batch, jnp.asarray(k)), batch,
                      lambda b, x: np.rot90(x, k[b], axes=(0, 1)))
  with pytest.raises(ValueError, match="square"):
    transforms.random_rot90(make_batch_3d(shape=(4, 5, 4)), jax.random.key(0))


def quarter_turn(axis):
  """By hand: the source offset of a 90-degree turn about `axis` (plane axis+1, axis+2)."""
  i, j = (axis + 1) % 3, (axis + 2) % 3
  m = np.zeros((3, 3), np.float32)
  m[axis, axis], m[i, j], m[j, i] = 1, 1, -1
  return m


def rotation_about(axis, radians):
  """By hand: the rotation by `radians` about `axis` (plane axis+1, axis+2)."""
  i, j = (axis + 1) % 3, (axis + 2) % 3
  m = np.eye(3)
  m[i, i] = m[j, j] = np.cos(radians)
  m[i, j], m[j, i] = np.sin(radians), -np.sin(radians)
  return m


def test_rotation_matrix_conventions():
  angles = np.concatenate([np.deg2rad(90.0) * np.eye(3), [[0.3, -0.2, 0.5]]]).astype(np.float32)
  got = np.asarray(jax.jit(jax.vmap(transforms.rotation_matrix))(angles))
  for axis in range(3):
    np.testing.assert_allclose(got[axis], quarter_turn(axis), atol=1e-6)
  want = rotation_about(0, 0.3) @ rotation_about(1, -0.2) @ rotation_about(2, 0.5)
  np.testing.assert_allclose(got[3], want, atol=1e-6)


def test_affine_identity_quarter_turns_and_zoom_out():
  batch = make_batch_3d(b=4)  # a 5^3 cube: turns about the centre voxel map voxels to voxels
  out = affine(batch, np.broadcast_to(np.eye(3, dtype=np.float32), (4, 3, 3)))
  for k in ("image", "label", "valid"):
    np.testing.assert_array_equal(out[k], batch[k])  # exact
  matrices = np.stack([quarter_turn(a) for a in range(3)] + [2 * np.eye(3, dtype=np.float32)])
  out = affine(batch, matrices)  # example 3 zooms out: voxel o reads 2 o - 2 (centre 2)
  planes = [(1, 2), (2, 0), (0, 1)]
  for k in ("image", "label", "valid"):
    for b in range(3):
      np.testing.assert_allclose(out[k][b], np.rot90(batch[k][b], 1, axes=planes[b]),
                                 atol=1e-5)
  assert out["label"].dtype == np.int32
  inside = np.zeros((5, 5, 5), np.float32)
  inside[1:4, 1:4, 1:4] = 1
  np.testing.assert_array_equal(out["valid"][3], inside)
  np.testing.assert_array_equal(out["label"][3, 1:4, 1:4, 1:4], batch["label"][3, ::2, ::2, ::2])
  np.testing.assert_allclose(out["image"][3, 1:4, 1:4, 1:4], batch["image"][3, ::2, ::2, ::2],
                             atol=1e-6)
  assert np.all(out["label"][3][inside == 0] == 0)


def test_random_affine_keys_shapes_and_identity_cases():
  batch = make_batch_3d(shape=(6, 5, 4))
  a, b = random_affine(batch, jax.random.key(1), 20.0, 0.2, 1.0), random_affine(
      batch, jax.random.key(1), 20.0, 0.2, 1.0)
  c = random_affine(batch, jax.random.key(2), 20.0, 0.2, 1.0)
  for k in ("image", "label", "valid"):
    np.testing.assert_array_equal(a[k], b[k])
    assert a[k].shape == batch[k].shape and a[k].dtype == batch[k].dtype
  assert not np.array_equal(a["image"], c["image"])
  assert set(np.unique(a["label"])) <= set(np.unique(batch["label"]))
  # No rotation with scale 1, or probability 0: every example exactly as it was.
  for args in ((0.0, 0.0, 1.0), (20.0, 0.2, 0.0)):
    same = random_affine(batch, jax.random.key(1), *args)
    for k in ("image", "label", "valid"):
      np.testing.assert_array_equal(same[k], batch[k])


def test_gamma_matches_numpy_and_one_is_identity():
  batch = make_batch_3d(shape=(4, 3, 2))
  g = np.array([0.5, 2.0, 1.0], np.float32)
  out = gamma(batch, g)["image"]
  for b in range(3):
    x = batch["image"][b].astype(np.float64)
    lo, hi = x.min((0, 1, 2)), x.max((0, 1, 2))  # per channel
    want = ((x - lo) / (hi - lo)) ** g[b] * (hi - lo) + lo
    np.testing.assert_allclose(out[b], want, rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(out[2], batch["image"][2])
  # random_gamma over a one-point range is that gamma; probability 0 is the identity.
  fixed = random_gamma(batch, jax.random.key(0), (2.0, 2.0), 1.0)
  np.testing.assert_allclose(fixed["image"], gamma(batch, np.full(3, 2.0))["image"], atol=1e-6)
  np.testing.assert_array_equal(random_gamma(batch, jax.random.key(0), (0.7, 1.5), 0.0)["image"],
                                batch["image"])
  drawn = random_gamma(batch, jax.random.key(0), (0.7, 1.5), 1.0)
  assert drawn["image"].shape == batch["image"].shape


def test_random_noise_sigma_and_probability():
  batch = make_batch_3d(b=2, shape=(4, 4, 4), c=2)
  out = random_noise(batch, jax.random.key(0), (0.5, 0.5), 1.0)
  residual = out["image"] - batch["image"]
  for b in range(2):  # 128 draws per example (fixed key): the std is within 25% of 0.5
    assert abs(residual[b].std() - 0.5) < 0.125
  np.testing.assert_array_equal(out["label"], batch["label"])
  np.testing.assert_array_equal(random_noise(batch, jax.random.key(0), (0.5, 0.5), 1.0)["image"],
                                out["image"])
  same = random_noise(batch, jax.random.key(0), (0.5, 0.5), 0.0)
  np.testing.assert_array_equal(same["image"], batch["image"])


def _augment_config(**fields):
  a = seg_configs.task_config().augment
  a.update(fields)
  return a


def test_volume_augmentation_options():
  with pytest.raises(InputError, match="rot90"):
    transforms.volume_augmentation(_augment_config(rot90=True), (40, 56, 40))
  batch = make_batch_3d(b=2, shape=(4, 4, 4))
  nothing = transforms.volume_augmentation(_augment_config(flip=False))
  assert nothing(batch, jax.random.key(0)) is batch


@pytest.mark.slow
def test_volume_augmentation_is_jittable_and_shape_preserving():
  config = _augment_config(
      flip=True, rot90=True, rotate_degrees=15.0, scale=0.15, noise_std=0.1,
      intensity_scale=0.1, intensity_shift=0.1, affine_probability=1.0,
      noise_probability=1.0, gamma_probability=1.0)
  augment = jax.jit(transforms.volume_augmentation(config, (8, 8, 6)))
  batch = make_batch_3d(b=2, shape=(8, 8, 6), c=1)
  a, b = augment(batch, jax.random.key(5)), augment(batch, jax.random.key(5))
  for k in ("image", "label", "valid"):
    np.testing.assert_array_equal(a[k], b[k])
    assert a[k].shape == batch[k].shape and a[k].dtype == batch[k].dtype
  assert not np.array_equal(a["image"], augment(batch, jax.random.key(6))["image"])
