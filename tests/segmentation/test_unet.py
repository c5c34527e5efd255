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


def _param_shapes(model, x):
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
  return {"/".join(str(k.key) for k in path): leaf.shape
          for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"])}


def test_deep_supervision_adds_only_heads_and_off_is_unchanged():
  x = jax.ShapeDtypeStruct((1, 8, 8, 8, 1), jnp.float32)
  kw = dict(spatial_dims=3, features=(4, 8, 16, 32), norm="instance")
  plain = _param_shapes(unet.UNet(3, **kw), x)
  # The module layout of a 4-level U-Net, as before deep supervision existed.
  assert {p.split("/")[0] for p in plain} == {
      *(f"ConvBlock_{i}" for i in range(7)), "Upsample_0", "Upsample_1", "Upsample_2",
      "Conv_0"}
  deep = _param_shapes(unet.UNet(3, deep_supervision=True, **kw), x)
  extra = {p: s for p, s in deep.items() if p not in plain}
  assert {p: s for p, s in deep.items() if p in plain} == plain
  assert extra == {"deep_supervision_1/kernel": (1, 1, 1, 8, 3),
                   "deep_supervision_1/bias": (3,),
                   "deep_supervision_2/kernel": (1, 1, 1, 16, 3),
                   "deep_supervision_2/bias": (3,)}


def test_deep_supervision_output_shapes_3d():
  model = unet.UNet(2, spatial_dims=3, features=(4, 8, 16, 32), norm="none",
                    deep_supervision=True)
  x = jax.ShapeDtypeStruct((2, 8, 6, 5, 1), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
  outs = jax.eval_shape(lambda v, x: model.apply(v, x, train=True), variables, x)
  assert [o.shape for o in outs] == [(2, 8, 6, 5, 2), (2, 4, 3, 3, 2), (2, 2, 2, 2, 2)]
  assert all(o.dtype == jnp.float32 for o in outs)
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  assert out.shape == (2, 8, 6, 5, 2)


def test_deep_supervision_values():
  """Full-resolution logits equal the plain model's; the head is a 1x1 conv of the
  decoder level at 1/2, cropped to ceil(size / 2)."""
  kw = dict(features=(4, 8, 16), norm="none")
  x = np.random.default_rng(5).normal(size=(1, 7, 6, 1)).astype(np.float32)
  deep = unet.UNet(3, deep_supervision=True, **kw)
  variables = _init(deep, x)
  plain_vars = {"params": {k: v for k, v in variables["params"].items()
                           if not k.startswith("deep_supervision")}}

  def both(v, pv, x):  # one compilation for both models
    return (deep.apply(v, x, train=True, capture_intermediates=True, mutable=["intermediates"]),
            unet.UNet(3, **kw).apply(pv, x, train=True))

  ((full, half), state), plain = jax.jit(both)(variables, plain_vars, x)
  np.testing.assert_allclose(full, plain, rtol=1e-5, atol=1e-5)
  assert half.shape == (1, 4, 3, 3)
  level = np.asarray(state["intermediates"]["ConvBlock_3"]["__call__"][0])  # (1, 4, 4, 8)
  head = variables["params"]["deep_supervision_1"]
  want = level @ head["kernel"][0, 0] + head["bias"]
  np.testing.assert_allclose(half, want[:, :4, :3], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("gradients", [
    False, pytest.param(True, marks=pytest.mark.slow)])  # ~5 s to compile the gradients
def test_conv_impl_slices_equals_plain_conv(gradients):
  """conv_impl='slices': a block's outputs (and gradients) equal the plain conv's.
  The convolution's own gradients are checked in test_conv3d.py."""
  x = np.random.default_rng(9).normal(size=(2, 3, 4, 2, 2)).astype(np.float32)
  blocks = [unet.ConvBlock(3, spatial_dims=3, norm="instance", conv_impl=impl)
            for impl in ("xla", "slices")]
  shapes = jax.eval_shape(lambda x: blocks[0].init(jax.random.key(0), x, train=True), x)
  rng = np.random.default_rng(11)
  params = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32),
                        shapes)["params"]
  g = np.random.default_rng(10).normal(size=(2, 3, 4, 2, 3)).astype(np.float32)

  def loss(params, x, block):
    out = block.apply({"params": params}, x, train=True)
    return jnp.vdot(out, g), out

  if not gradients:
    plain, sliced = jax.jit(lambda p, x: [b.apply({"params": p}, x, train=True)
                                          for b in blocks])(params, x)
    np.testing.assert_allclose(sliced, plain, rtol=1e-4, atol=1e-5)
    return
  both = jax.jit(lambda p, x: [jax.grad(loss, (0, 1), has_aux=True)(p, x, b) for b in blocks])
  (g_plain, out_plain), (g_slices, out_slices) = both(params, x)
  np.testing.assert_allclose(out_slices, out_plain, rtol=1e-4, atol=1e-5)
  for a, b in zip(jax.tree.leaves(g_slices), jax.tree.leaves(g_plain)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_unet_passes_conv_impl_to_its_blocks():
  """Traced only: every 3^3 conv becomes three 2D convs; parameters are unchanged."""
  x = jax.ShapeDtypeStruct((1, 2, 4, 2, 1), jnp.float32)

  def trace(impl):
    model = unet.UNet(2, spatial_dims=3, features=FEATURES, norm="instance", conv_impl=impl)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
    jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x, train=True))(variables, x)
    ranks = [e.invars[0].aval.ndim for e in jaxpr.eqns if e.primitive.name.startswith("conv")]
    return jax.tree.map(lambda s: s.shape, variables), sorted(ranks)

  (plain_shapes, plain_ranks), (slice_shapes, slice_ranks) = trace("xla"), trace("slices")
  assert plain_shapes == slice_shapes
  # 3 blocks x 2 convs of 3^3, 3 2D convs each; the 1^3 head stays one 3D conv.
  assert plain_ranks == [5] * 7 and slice_ranks == [4] * 18 + [5]
