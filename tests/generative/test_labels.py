"""Random label-map deformations: exact classes, affine maths against numpy, the elastic field."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from medjax.generative import labels as labels_lib
from medjax.segmentation import transforms


def _maps(batch=4, size=16, classes=3, seed=0):
  """Blocky maps: a few rectangles of classes 1.., on background 0."""
  rng = np.random.default_rng(seed)
  maps = np.zeros((batch, size, size), np.int32)
  for b in range(batch):
    for c in range(1, classes):
      y, x = rng.integers(0, size - 5, 2)
      maps[b, y:y + rng.integers(3, 6), x:x + rng.integers(3, 8)] = c
  return maps


# One compile per (alpha, sigma, shape): the other options are traced.
@functools.partial(jax.jit, static_argnames=("alpha", "sigma"))
def _random(maps, key, max_degrees, scale, translate, alpha, sigma, flip):
  return labels_lib.random_label_maps(maps, key, max_degrees, scale, translate, alpha, sigma,
                                      flip)


_deform = jax.jit(labels_lib.deform)


def test_identity_parameters_give_the_same_maps():
  maps = _maps()
  out = _random(maps, jax.random.PRNGKey(0), 0.0, 0.0, 0.0, 0, 4.0, False)
  assert out.dtype == jnp.int32
  np.testing.assert_array_equal(out, maps)
  eye = np.broadcast_to(np.eye(2, dtype=np.float32), (4, 2, 2))
  np.testing.assert_array_equal(_deform(maps, eye, np.zeros((4, 2), np.float32),
                                        np.zeros((4, 2, 16, 16), np.float32)), maps)


def test_outputs_keep_each_maps_own_classes_and_change_the_maps():
  maps = _maps(classes=4)
  maps[1] = np.where(maps[1] == 0, 2, maps[1])  # a map without background
  out = np.asarray(_random(maps, jax.random.PRNGKey(3), 15.0, 0.1, 0.05, 2.0, 4.0, True))
  for b in range(len(maps)):
    assert set(np.unique(out[b])) <= set(np.unique(maps[b]))
  assert (out != maps).mean() > 0.01


def test_a_quarter_turn_is_np_rot90_and_flips_are_np_flips():
  maps = _maps()
  turn = np.broadcast_to(transforms.rotation_matrix(jnp.pi / 2), (4, 2, 2))
  zeros = np.zeros((4, 2), np.float32), np.zeros((4, 2, 16, 16), np.float32)
  np.testing.assert_array_equal(_deform(maps, turn, *zeros), np.rot90(maps, 1, (1, 2)))
  # flip-only draws: every output is one of the four axis flips of its input
  out = np.asarray(_random(maps, jax.random.PRNGKey(1), 0.0, 0.0, 0.0, 0, 4.0, True))
  seen = set()
  for o, m in zip(out, maps):
    flips = [m, m[::-1], m[:, ::-1], m[::-1, ::-1]]
    seen.add(next(i for i, f in enumerate(flips) if np.array_equal(o, f)))
  assert len(seen) > 1


def test_shifts_move_the_content_by_whole_pixels():
  maps = _maps()
  eye = np.broadcast_to(np.eye(2, dtype=np.float32), (4, 2, 2))
  shifts = np.tile(np.asarray([[2.0, -3.0]], np.float32), (4, 1))
  out = np.asarray(_deform(maps, eye, shifts, np.zeros((4, 2, 16, 16), np.float32)))[0]
  np.testing.assert_array_equal(out[2:, :-3], maps[0][:-2, 3:])
  np.testing.assert_array_equal(out[:2, :-3], np.repeat(maps[0][:1, 3:], 2, axis=0))  # edge


def test_3d_maps_rotate_as_np_rot90():
  vol = np.random.default_rng(0).integers(0, 3, (1, 5, 5, 5)).astype(np.int32)
  turn = np.asarray([[[0, 1, 0], [-1, 0, 0], [0, 0, 1]]], np.float32)  # a quarter turn about z
  out = _deform(vol, turn, np.zeros((1, 3), np.float32), np.zeros((1, 3, 5, 5, 5), np.float32))
  np.testing.assert_array_equal(out[0], np.rot90(vol[0], 1, (0, 1)))


def test_elastic_field_has_the_configured_magnitude_and_smoothness():
  alpha, sigma = 1.5, 2.0
  field = np.asarray(jax.jit(labels_lib.elastic_field, static_argnums=(1, 2, 3))(
      jax.random.PRNGKey(0), (8, 32, 32), alpha, sigma))
  assert field.shape == (8, 2, 32, 32)
  assert abs(field.mean()) < 0.15 * alpha
  np.testing.assert_allclose(field.std(), alpha, rtol=0.15)
  # correlation of neighbours: Gaussian-smoothed white noise gives exp(-r^2 / (4 sigma^2))
  for axis in (2, 3):
    a = np.moveaxis(field, axis, -1)
    corr = np.corrcoef(a[..., :-1].ravel(), a[..., 1:].ravel())[0, 1]
    np.testing.assert_allclose(corr, np.exp(-1 / (4 * sigma ** 2)), atol=0.03)
  far = np.corrcoef(field[..., :-12].ravel(), field[..., 12:].ravel())[0, 1]
  assert far < 0.2  # exp(-144/16) ~ 0: distant displacements independent
