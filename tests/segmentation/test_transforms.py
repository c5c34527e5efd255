import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
