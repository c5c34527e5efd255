"""Grad-CAM on tiny hand-set convolutional models in 2D and 3D."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax import explain
from medjax.engine.errors import InputError


class Backbone(nn.Module):
  ndim: int
  plain_sow: bool = False

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(3, (3,) * self.ndim, padding="SAME", name="conv")(x))
    x = nn.avg_pool(x, (2,) * self.ndim, (2,) * self.ndim)
    if self.plain_sow:
      self.sow("intermediates", "features", x)
      return x
    return explain.mark_features(self, x)


class TinyCNN(nn.Module):
  ndim: int = 2
  plain_sow: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = Backbone(self.ndim, self.plain_sow, name="backbone")(x)
    x = jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))
    return nn.Dense(2, name="head")(x)


class Mlp(nn.Module):

  @nn.compact
  def __call__(self, x, train: bool = False):
    return nn.Dense(2)(x.reshape(x.shape[0], -1))


MODELS = {2: TinyCNN(ndim=2), 3: TinyCNN(ndim=3)}
APPLY = {d: functools.partial(m.apply, train=False) for d, m in MODELS.items()}
CLASS0, CLASS1 = explain.class_output(0), explain.class_output(1)


def hand_set(model, x):
  """Channel 0: 3^d box blur; channel 1: its negative; class 0 reads channel 0 only."""
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  assert set(variables) == {"params"}  # marking features adds no variables at init
  kernel = np.zeros(variables["params"]["backbone"]["conv"]["kernel"].shape, np.float32)
  kernel[..., 0, 0] = 1 / 3 ** model.ndim
  kernel[..., 0, 1] = -1 / 3 ** model.ndim
  kernel[..., 0, 2] = 0.5 / 3 ** model.ndim
  head = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], np.float32)
  params = {"backbone": {"conv": {"kernel": jnp.asarray(kernel), "bias": jnp.zeros(3)}},
            "head": {"kernel": jnp.asarray(head), "bias": jnp.zeros(2)}}
  return {"params": params}


def zeros_like_init(model, x):
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def upsample_linear(a, shape):
  """Half-pixel-centred linear upsampling by an integer factor, one axis at a time (numpy)."""
  for axis, size in enumerate(shape):
    src = (np.arange(size) + 0.5) * a.shape[axis] / size - 0.5
    src = np.clip(src, 0, a.shape[axis] - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, a.shape[axis] - 1)
    w = (src - lo).reshape([-1 if i == axis else 1 for i in range(a.ndim)])
    a = np.take(a, lo, axis) * (1 - w) + np.take(a, hi, axis) * w
  return a


def blob_input(spatial, corner, size=2):
  x = np.zeros((1,) + spatial + (1,), np.float32)
  x[(0,) + tuple(slice(c, c + size) for c in corner)] = 1.0
  return jnp.asarray(x)


@pytest.mark.parametrize("spatial,corner", [((8, 8), (4, 2)), ((8, 8, 8), (2, 4, 4))])
def test_gradcam_localises_planted_blob(spatial, corner):
  model, apply = MODELS[len(spatial)], APPLY[len(spatial)]
  x = blob_input(spatial, corner)
  variables = hand_set(model, x)
  cam = explain.gradcam(apply, variables, x, CLASS0)
  assert cam.shape == (1,) + spatial
  # Reference by hand: mean pooling + Dense makes dscore/dA_k = head[k, 0] / N, so the
  # map is relu(A_0) / N, with A_0 the sown feature map; resized to the input.
  _, state = jax.jit(functools.partial(apply, mutable=["intermediates"]))(variables, x)
  features = np.asarray(state["intermediates"]["backbone"]["features"][0])
  n = np.prod(features.shape[1:-1])
  want = upsample_linear(np.maximum(features[0, ..., 0], 0) / n, spatial)[None]
  np.testing.assert_allclose(cam, want, rtol=1e-5, atol=1e-7)
  peak = np.unravel_index(int(np.argmax(cam[0])), spatial)
  assert all(c - 1 <= p <= c + 2 for p, c in zip(peak, corner))
  far = np.ones(spatial, bool)
  far[tuple(slice(max(c - 3, 0), c + 5) for c in corner)] = False
  assert float(cam[0][far].max()) < 0.05 * float(cam.max())


def test_gradcam_weighs_channels_by_their_gradient():
  # Class 1 reads channels 1 (relu of a negative blur: zero) and 2 (0.5 x blur), so its
  # map is half of class 0's. Negating the head gives only negative evidence: relu -> 0.
  x = blob_input((8, 8), (2, 2))
  variables = hand_set(MODELS[2], x)
  cam0 = explain.gradcam(APPLY[2], variables, x, CLASS0)
  cam1 = explain.gradcam(APPLY[2], variables, x, CLASS1)
  np.testing.assert_allclose(cam1, 0.5 * cam0, rtol=1e-5, atol=1e-8)
  neg = jax.tree.map(lambda a: a, variables)
  neg["params"]["head"]["kernel"] = -variables["params"]["head"]["kernel"]
  cam_neg = explain.gradcam(APPLY[2], neg, x, CLASS0)
  assert float(jnp.abs(cam_neg).max()) == 0.0


def test_gradcam_without_conv_features_names_the_flag():
  model = Mlp()
  x = jnp.ones((2, 4, 4, 1))
  variables = zeros_like_init(model, x)
  with pytest.raises(InputError, match=r"--config.explain.method=gradcam.*no convolutional"):
    explain.gradcam(functools.partial(model.apply, train=False), variables, x,
                    explain.class_output(0))


def test_gradcam_refuses_a_plain_sow_without_the_gradient_hook():
  model = TinyCNN(plain_sow=True)
  x = blob_input((8, 8), (2, 2))
  variables = zeros_like_init(model, x)
  with pytest.raises(ValueError, match="mark_features"):
    explain.gradcam(functools.partial(model.apply, train=False), variables, x,
                    explain.class_output(0))
