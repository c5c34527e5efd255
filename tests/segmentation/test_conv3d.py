import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
import pytest

from medjax.engine.errors import InputError
from medjax.segmentation import conv3d

DN = ("NDHWC", "DHWIO", "NDHWC")


def _plain(x, k, padding, strides=(1, 1, 1)):
  return lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=DN)


@pytest.mark.parametrize("kernel,padding,strides", [
    ((3, 3, 3), "SAME", (1, 1, 1)),
    ((3, 2, 3), ((2, 0), (1, 0), (0, 1)), (1, 1, 1)),  # asymmetric, even kernel axis
    ((1, 3, 3), "VALID", (1, 1, 1)),
    ((3, 3, 3), "SAME", (2, 2, 2)),
    ((3, 2, 1), ((1, 1), (0, 1), (0, 0)), (2, 1, 3)),  # mixed strides, odd sizes
])
def test_slices_equal_plain_conv_values_and_gradients(kernel, padding, strides):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 5, 7, 3)).astype(np.float32)
  k = rng.normal(size=kernel + (3, 2)).astype(np.float32)
  slices = lambda x, k: conv3d.conv_slices(x, k, strides, padding, dimension_numbers=DN)
  y = jax.jit(slices)(x, k)
  np.testing.assert_allclose(y, _plain(x, k, padding, strides), rtol=1e-5, atol=1e-5)
  g = rng.normal(size=y.shape).astype(np.float32)
  grads = jax.jit(jax.grad(lambda x, k, f: jnp.vdot(f(x, k), g), (0, 1)),
                  static_argnums=2)
  plain = lambda x, k: _plain(x, k, padding, strides)
  for got, want in zip(grads(x, k, slices), grads(x, k, plain)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_slices_one_voxel_by_hand():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(1, 3, 3, 3, 2)).astype(np.float32)
  k = rng.normal(size=(3, 3, 3, 2, 4)).astype(np.float32)
  y = conv3d.conv_slices(x, k, (1, 1, 1), "SAME", dimension_numbers=DN)
  # The centre voxel sees the whole (unpadded) input: a full contraction.
  np.testing.assert_allclose(y[0, 1, 1, 1], np.einsum("dhwc,dhwco->o", x[0], k), rtol=1e-5)


def test_other_convolutions_fall_back_to_lax():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(1, 6, 6, 2)).astype(np.float32)
  k = rng.normal(size=(3, 3, 2, 2)).astype(np.float32)
  dn = ("NHWC", "HWIO", "NHWC")
  np.testing.assert_array_equal(
      conv3d.conv_slices(x, k, (2, 2), "SAME", dimension_numbers=dn),
      lax.conv_general_dilated(x, k, (2, 2), "SAME", dimension_numbers=dn))


def test_conv_fn():
  assert conv3d.conv_fn("xla") is None and conv3d.conv_fn("slices") is conv3d.conv_slices
  with pytest.raises(InputError, match="conv_impl"):
    conv3d.conv_fn("im2col")
