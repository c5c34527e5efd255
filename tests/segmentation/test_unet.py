import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.segmentation import unet

FEATURES = (4, 8)


def _init(model, x):
  """Random variables of the model's shapes, without compiling its initialisers."""
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: 0.5 * rng.normal(size=s.shape).astype(np.float32),
                        shapes["params"])
  stats = jax.tree_util.tree_map_with_path(
      lambda path, s: np.full(s.shape, "var" in str(path[-1]), np.float32),
      shapes.get("batch_stats", {}))
  return {"params": params, "batch_stats": stats} if stats else {"params": params}


def _apply(model):
  return jax.jit(model.apply, static_argnames=("train", "mutable"))


@pytest.mark.parametrize("spatial,norm,upsample,dtype", [
    ((16, 16), "batch", "subpixel", jnp.float32),
    ((16, 16), "group", "transpose", jnp.bfloat16),
    ((13, 10), "instance", "subpixel", jnp.float32),  # not divisible by 2**(depth-1)
    ((8, 6, 5), "none", "subpixel", jnp.bfloat16),
    ((8, 8, 8), "batch", "transpose", jnp.float32),
])
def test_shapes_and_dtypes(spatial, norm, upsample, dtype):
  """Traced only (no compilation): shapes, dtypes and collections."""
  model = unet.UNet(3, spatial_dims=len(spatial), features=FEATURES, norm=norm,
                    upsample=upsample, dtype=dtype)
  x = jax.ShapeDtypeStruct((2, *spatial, 1), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
  assert ("batch_stats" in variables) == (norm == "batch")
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables["params"]))
  out, _ = jax.eval_shape(
      lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]), variables, x)
  assert out.shape == (2, *spatial, 3) and out.dtype == jnp.float32


def test_batch_stats_and_dropout():
  model = unet.UNet(2, features=FEATURES, norm="batch", dropout=0.5)
  x = np.random.default_rng(4).normal(size=(2, 8, 8, 1)).astype(np.float32)
  variables = _init(model, x)
  apply = _apply(model)
  a = apply(variables, x, train=False)
  np.testing.assert_array_equal(a, apply(variables, x, train=False))
  b, updates = apply(variables, x, train=True, mutable=("batch_stats",),
                     rngs={"dropout": jax.random.key(5)})
  c, _ = apply(variables, x, train=True, mutable=("batch_stats",),
               rngs={"dropout": jax.random.key(6)})
  assert not np.allclose(b, c) and not np.allclose(a, b)
  before = jax.tree.leaves(variables["batch_stats"])
  after = jax.tree.leaves(updates["batch_stats"])
  assert any(not np.allclose(u, v) for u, v in zip(before, after))


def test_odd_sizes_are_padded_and_cropped():
  # The model zero-pads odd sizes at the high end and crops the logits back.
  model = unet.UNet(2, features=FEATURES, norm="batch")
  x = np.random.default_rng(3).normal(size=(1, 7, 5, 1)).astype(np.float32)
  variables = _init(model, x)
  padded = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
  apply = _apply(model)
  np.testing.assert_allclose(apply(variables, x), apply(variables, padded)[:, :7, :5],
                             atol=1e-6)


@pytest.mark.parametrize("spatial", [(3, 5), (2, 3, 4)])
def test_subpixel_equals_stride2_transposed_conv(spatial):
  """A 2^d-kernel stride-2 transposed conv is a per-phase 1x1 conv + pixel shuffle."""
  d, c_in, c_out = len(spatial), 3, 2
  x = np.random.default_rng(7).normal(size=(2, *spatial, c_in)).astype(np.float32)
  transpose = nn.ConvTranspose(c_out, (2,) * d, strides=(2,) * d)
  rng = np.random.default_rng(8)
  kernel = rng.normal(size=(2,) * d + (c_in, c_out)).astype(np.float32)
  t_vars = {"params": {"kernel": kernel, "bias": rng.normal(size=c_out).astype(np.float32)}}
  # Flax's transposed conv does not flip the kernel: output phase a reads tap 1-a.
  flipped = kernel[(slice(None, None, -1),) * d]
  sub_kernel = np.moveaxis(flipped, d, 0).reshape(c_in, -1)  # (c_in, (p.. c_out))
  sub_vars = {"params": {"Dense_0": {"kernel": sub_kernel},
                         "bias": t_vars["params"]["bias"]}}
  sub = unet.Upsample(c_out, d, "subpixel")
  y = np.asarray(jax.jit(sub.apply)(sub_vars, x))
  np.testing.assert_allclose(y, jax.jit(transpose.apply)(t_vars, x), rtol=1e-5, atol=1e-5)
  # Independent numpy check of one output pixel per phase.
  for phase in np.ndindex(*(2,) * d):
    tap = tuple(1 - p for p in phase)
    expect = x[(0,) + (0,) * d] @ kernel[tap] + t_vars["params"]["bias"]
    np.testing.assert_allclose(y[(0,) + phase], expect, rtol=1e-5)


def test_depth_to_space_layout():
  x = jnp.arange(2 * 2 * 4 * 3).reshape(1, 2, 2, 12)  # (B, 2, 2, (p q c)), c=3
  y = unet.depth_to_space(x, 2)
  assert y.shape == (1, 4, 4, 3)
  # Pixel (2i+p, 2j+q) holds channels [(p*2+q)*3 : +3] of input pixel (i, j).
  np.testing.assert_array_equal(y[0, 3, 2], x[0, 1, 1, 6:9])
  np.testing.assert_array_equal(y[0, 0, 1], x[0, 0, 0, 3:6])


@pytest.mark.parametrize("options", [{"norm": "layer"}, {"upsample": "nearest"},
                                     {"spatial_dims": 3}])
def test_rejects_bad_options(options):
  model = unet.UNet(2, features=FEATURES, **options)
  with pytest.raises(ValueError):
    jax.eval_shape(lambda x: model.init(jax.random.key(0), x), jnp.ones((1, 8, 8, 1)))
