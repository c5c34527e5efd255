import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.classification import models
from medjax.classification.models import densenet, resnet, seed_cnn
from medjax.engine.errors import InputError
from medjax import explain

# Tiny networks for forward passes (compiling the full ones takes minutes on
# CPU); the published layouts are checked from shapes alone (eval_shape).
TINY = {
    "basic": functools.partial(resnet.ResNet, block=resnet.BasicBlock, stage_sizes=(1, 1),
                               width=1 / 16),
    "bottleneck": functools.partial(resnet.ResNet, block=resnet.Bottleneck,
                                    stage_sizes=(1, 1), width=1 / 16),
    "densenet": functools.partial(densenet.DenseNet, block_config=(2, 2), width=1 / 8),
    "seed_cnn": functools.partial(seed_cnn.SeedCNN, features=(4, 8), hidden=8),
}


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _variables(model, shape):
  """Random variables of the model's shapes, without compiling its initialisers."""
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
  rng = np.random.default_rng(0)
  return jax.tree_util.tree_map_with_path(
      lambda path, s: (1 + rng.random(s.shape) if "var" in str(path[-1])
                       else 0.3 * rng.normal(size=s.shape)).astype(np.float32), shapes)


def _image(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


@functools.partial(jax.jit, static_argnums=0)
def _run(model, variables, x, key):
  """Training and evaluation outputs of one compiled program."""
  train, updates = model.apply(variables, x, train=True, rngs={"dropout": key},
                               mutable=["batch_stats"])
  evaluation, state = model.apply(variables, x, train=False, mutable=["intermediates"])
  single = model.apply(variables, x[:1], train=False)
  return dict(train=train, updates=updates["batch_stats"], eval=evaluation, single=single,
              features=state["intermediates"]["features"][0])


def _pooled_logits(name, params, features):
  """What the head computes from the sown map: mean over space, (hidden), dense."""
  x = features.astype(jnp.float32).mean(axis=tuple(range(1, features.ndim - 1)))
  if name == "seed_cnn":
    x = nn.relu(x @ params["hidden"]["kernel"] + params["hidden"]["bias"])
  return x @ params["head"]["kernel"] + params["head"]["bias"]


def _shapes(model, shape):
  """(logits, variables incl. intermediates) as shapes, traced only."""
  return jax.eval_shape(lambda x: model.init_with_output(
      jax.random.key(0), x, mutable=["params", "batch_stats", "intermediates"]),
      jax.ShapeDtypeStruct(shape, jnp.float32))


@pytest.mark.parametrize("name,expected,features", [
    ("resnet18", 11_689_512, (1, 2, 3, 512)),  # stem /4, then 3 stride-2 stages
    ("resnet50", 25_557_032, (1, 2, 3, 2048)),
    ("densenet121", 7_978_856, (1, 2, 3, 1024)),  # stem /4, then 3 transitions
])
def test_torchvision_layouts(name, expected, features):
  """torchvision's parameter counts (1000 classes, 3 input channels), from shapes."""
  logits, variables = _shapes(models.make_model(name, 1000), (1, 64, 96, 3))
  assert _count(variables["params"]) == expected
  assert logits.shape == (1, 1000) and logits.dtype == jnp.float32
  assert variables["intermediates"]["features"][0].shape == features
  assert variables["params"]["stem_conv"]["kernel"].shape == (7, 7, 3, 64)
  # BatchNorm running statistics: a mean and a variance per scale parameter.
  scales = [x for path, x in jax.tree_util.tree_flatten_with_path(variables["params"])[0]
            if path[-1].key == "scale"]
  assert _count(variables["batch_stats"]) == 2 * _count(scales)


@pytest.mark.parametrize("name,kwargs,features", [
    ("resnet18", dict(small_input=True), (1, 3, 3, 3, 512)),  # stem stride 1
    ("resnet18", {}, (1, 1, 1, 1, 512)),
    ("seed_cnn", dict(width=0.5), (1, 6, 6, 6, 64)),
])
def test_3d_shapes(name, kwargs, features):
  model = models.make_model(name, 5, spatial_dims=3, **kwargs)
  logits, variables = _shapes(model, (1, 24, 24, 24, 1))
  assert logits.shape == (1, 5) and logits.dtype == jnp.float32
  assert variables["intermediates"]["features"][0].shape == features
  first = variables["params"]["stem_conv" if name != "seed_cnn" else "conv1"]["kernel"]
  assert first.shape[:3] == ((3, 3, 3) if kwargs or name == "seed_cnn" else (7, 7, 7))


@pytest.mark.parametrize("name,shape", [
    pytest.param("basic", (2, 32, 32, 1), marks=pytest.mark.slow),
    pytest.param("bottleneck", (2, 16, 16, 16, 1), marks=pytest.mark.slow),
    pytest.param("densenet", (2, 32, 32, 1), marks=pytest.mark.slow),
    ("seed_cnn", (2, 16, 16, 1)),
    pytest.param("seed_cnn", (2, 12, 12, 12, 1), marks=pytest.mark.slow)])
def test_train_eval_dropout_and_grad_cam_features(name, shape):
  d = len(shape) - 2
  small = dict(small_input=True) if d == 3 and name != "seed_cnn" else {}
  model = TINY[name](3, spatial_dims=d, dropout=0.5, **small)
  variables = _variables(model, shape)
  assert set(variables) == {"params", "batch_stats"}  # init adds nothing for Grad-CAM
  out, other = (_run(model, variables, _image(shape), jax.random.key(k)) for k in (0, 1))
  assert out["train"].shape == out["eval"].shape == (2, 3)
  assert out["train"].dtype == out["eval"].dtype == jnp.float32
  # Training normalises with batch statistics and updates every running average.
  assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                                          out["updates"], variables["batch_stats"])))
  # Dropout draws from the 'dropout' stream in training only.
  assert not np.allclose(out["train"], other["train"])
  np.testing.assert_array_equal(out["eval"], other["eval"])
  # Evaluation uses the running averages: an image alone gives its batch logits.
  np.testing.assert_allclose(out["single"], out["eval"][:1], rtol=1e-4, atol=1e-5)
  # The sown map is the one the head pools, and evaluation drops nothing.
  np.testing.assert_allclose(out["eval"], _pooled_logits(name, variables["params"],
                                                         out["features"]),
                             rtol=1e-4, atol=1e-5)


def test_bfloat16_compute_keeps_float32_params_and_logits():
  """Traced only: convolutions in bfloat16, parameters, statistics and logits float32."""
  model = models.make_model("resnet18", 4, dtype=jnp.bfloat16, width=1 / 8)
  logits, variables = _shapes(model, (2, 32, 32, 3))
  assert logits.dtype == jnp.float32
  assert variables["intermediates"]["features"][0].dtype == jnp.bfloat16
  stored = jax.tree.leaves({k: variables[k] for k in ("params", "batch_stats")})
  assert {x.dtype for x in stored} == {jnp.dtype(jnp.float32)}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["seed_cnn", "basic", "densenet"])
def test_bfloat16_logits_close_to_float32(name):
  shape = (2, 32, 32, 1)
  full = TINY[name](2)
  half = TINY[name](2, dtype=jnp.bfloat16)
  variables, x = _variables(full, shape), _image(shape)
  apply = jax.jit(lambda m, v, x: m.apply(v, x, train=False), static_argnums=0)
  out, ref = apply(half, variables, x), apply(full, variables, x)
  assert out.dtype == jnp.float32 and not np.array_equal(out, ref)
  np.testing.assert_allclose(out, ref, atol=0.05 * float(jnp.abs(ref).max()))


def test_grad_cam_at_the_marked_feature_map():
  """Logits are linear in the pooled map, so d logit_c / dA = W[:, c] / (H W)."""
  model = resnet.ResNet(3, stage_sizes=(1,), width=1 / 16)
  shape = (2, 16, 16, 1)
  variables, x = _variables(model, shape), _image(shape)
  apply = functools.partial(model.apply, train=False)
  cams = explain.gradcam(apply, variables, x, lambda logits: logits[:, 2], resize=False)
  _, state = apply(variables, x, mutable=["intermediates"])
  features = state["intermediates"]["features"][0]
  weights = variables["params"]["head"]["kernel"][:, 2] / (4 * 4)
  np.testing.assert_allclose(cams, jax.nn.relu(features @ weights), rtol=1e-4, atol=1e-6)
  assert features.shape == (2, 4, 4, 4) and float(cams.max()) > 0


def test_bad_names_and_fields_are_input_errors():
  with pytest.raises(InputError, match=r"config\.task\.model\.name.*'vgg'.*resnet18.*"
                     r"densenet121.*seed_cnn"):
    models.make_model("vgg", 2)
  with pytest.raises(InputError, match=r"small_inputs not a field of resnet18.*small_input"):
    models.make_model("resnet18", 2, small_inputs=True)
  with pytest.raises(InputError, match="stage_sizes not a field"):
    models.make_model("resnet50", 2, stage_sizes=(1, 1))
  with pytest.raises(InputError, match="spatial_dims"):
    models.make_model("seed_cnn", 2, spatial_dims=1)
