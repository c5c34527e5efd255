"""On a CNN trained to detect a planted blob, every method passes the trust checks (slow)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from medjax import explain
from medjax.explain import checks


class BlobCNN(nn.Module):

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(nn.Conv(8, (3, 3), name="conv1")(x))
    x = nn.relu(nn.Conv(8, (3, 3), name="conv2")(x))
    x = explain.mark_features(self, x)
    return nn.Dense(2, name="head")(jnp.mean(x, axis=(1, 2)))


def blobs(rng, n):
  """Noise images; label 1 adds a bright 4x4 blob at a random place."""
  x = rng.normal(0, 0.3, size=(n, 16, 16, 1)).astype(np.float32)
  y = rng.integers(0, 2, n)
  boxes = np.zeros((n, 16, 16), bool)
  for i in np.nonzero(y)[0]:
    r, c = rng.integers(0, 12, 2)
    x[i, r:r + 4, c:c + 4] += 1.5
    boxes[i, r:r + 4, c:c + 4] = True
  return jnp.asarray(x), jnp.asarray(y), boxes


def train(model, x, y, rng, steps=250):
  params = model.init(jax.random.key(0), x[:2])
  tx = optax.adam(3e-3)

  @jax.jit
  def step(params, opt, xb, yb):
    loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(
        model.apply(p, xb), yb).mean()
    updates, opt = tx.update(jax.grad(loss)(params), opt)
    return optax.apply_updates(params, updates), opt

  opt = tx.init(params)
  for _ in range(steps):
    j = rng.integers(0, len(x), 64)
    params, opt = step(params, opt, x[j], y[j])
  return params


@pytest.mark.slow
def test_trained_cnn_methods_are_faithful_and_parameter_sensitive():
  rng = np.random.default_rng(0)
  model = BlobCNN()
  variables = train(model, *blobs(rng, 512)[:2], rng)
  xt, yt, boxes = blobs(rng, 64)
  assert float((model.apply(variables, xt).argmax(-1) == yt).mean()) > 0.95
  pos = np.nonzero(np.asarray(yt))[0][:12]
  x, boxes = xt[pos], boxes[pos]
  random_variables = model.init(jax.random.key(1), x)
  key = jax.random.key(2)

  def run(v):
    fn = explain.target_score(lambda z: model.apply(v, z), 1)
    cam = explain.gradcam(model.apply, v, x, explain.class_output(1))
    ig, gap = explain.integrated_gradients(fn, x, steps=32)
    return fn, gap, {"gradients": explain.gradients(fn, x),
                     "smoothgrad": explain.smoothgrad(fn, x, key, samples=8),
                     "integrated_gradients": ig, "occlusion": explain.occlusion(fn, x, (2, 2)),
                     "gradcam": jnp.broadcast_to(cam[..., None], x.shape)}

  fn, gap, trained = run(variables)
  _, _, randomised = run(random_variables)
  assert float(jnp.abs(gap).max()) < 0.05 * float(jnp.abs(fn(x)).mean())
  for name, attr in trained.items():
    a = np.abs(np.asarray(attr)[..., 0])
    in_blob = np.mean([a[i][boxes[i]].sum() / a[i].sum() for i in range(len(a))])
    assert in_blob > 1.5 * boxes.mean(), name  # more mass on the blob than uniform
    f = checks.faithfulness(fn, x, jnp.abs(attr), key, steps=16, seeds=3)
    assert f["deletion_auc"] < f["random_deletion_auc"], name
    assert f["insertion_auc"] > f["random_insertion_auc"], name
  for name in ("gradients", "gradcam"):  # the model-sensitive ones (Adebayo et al.)
    rho = checks.spearman(np.abs(trained[name]), np.abs(randomised[name]))
    assert np.nanmean(rho) < 0.4, name
