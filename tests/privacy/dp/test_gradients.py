"""DP-SGD gradient rule: clipping bound, equality with the ordinary step, noise scale."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.engine import steps
from medjax.privacy.dp import gradients
from tests.privacy.dp.tiny import linear_loss, numpy_example_grads

DIM = 3


def _params(seed=0):
  rng = np.random.default_rng(seed)
  return {"w": jnp.asarray(rng.normal(size=DIM), jnp.float32), "b": jnp.float32(0.3)}


def _batch(n_real, rows, seed=1):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(rows, DIM)).astype(np.float32)
  y = rng.normal(size=rows).astype(np.float32)
  mask = (np.arange(rows) < n_real).astype(np.float32)
  return {"x": x, "y": y, "_mask": mask}


def _dp(params, batch, key=0, **kw):
  kw = {"clip_norm": 1.0, "noise_multiplier": 0.0, "expected_batch_size": 1.0, **kw}
  fn = jax.jit(lambda p, b, k: gradients.private_value_and_grad(k, linear_loss, p, b, **kw))
  return fn(params, batch, jax.random.PRNGKey(key))


def test_no_clip_no_noise_equals_the_ordinary_gradient():
  params, batch = _params(), _batch(n_real=6, rows=8)
  (loss, metrics), grads = _dp(params, batch, clip_norm=np.inf, expected_batch_size=6.0)
  (ref_loss, ref_metrics), ref = steps.value_and_grad(linear_loss, params, batch)
  np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
  np.testing.assert_allclose(metrics["mse"], ref_metrics["mse"], rtol=1e-5)
  for k in ref:
    np.testing.assert_allclose(grads[k], ref[k], rtol=1e-5, atol=1e-6)


def test_clipped_sum_matches_numpy_and_one_outlier_moves_it_by_at_most_c():
  clip = 0.5
  params, batch = _params(), _batch(n_real=5, rows=6)
  batch["x"][4] *= 1e3  # the outlier
  batch["y"][4] = 1e4
  _, grads = _dp(params, batch, clip_norm=clip)
  gw, gb = numpy_example_grads(params, batch["x"][:5], batch["y"][:5])
  norms = np.sqrt(np.sum(gw ** 2, 1) + gb ** 2)
  scale = np.minimum(1.0, clip / norms)
  np.testing.assert_allclose(grads["w"], (scale[:, None] * gw).sum(0), rtol=2e-4, atol=1e-5)
  np.testing.assert_allclose(grads["b"], (scale * gb).sum(), rtol=2e-4, atol=1e-5)
  without = dict(batch, _mask=batch["_mask"] * (np.arange(6) != 4))
  _, grads_without = _dp(params, without, clip_norm=clip)
  diff = np.sqrt(sum(np.sum((np.asarray(grads[k]) - grads_without[k]) ** 2) for k in grads))
  assert norms[4] > 1e3 * clip
  np.testing.assert_allclose(diff, clip, rtol=1e-4)  # the outlier, clipped to exactly C


def test_padding_rows_contribute_nothing_even_when_nan():
  params, batch = _params(), _batch(n_real=3, rows=5)
  clean = {k: v.copy() for k, v in batch.items()}
  batch["x"][3:] = np.nan
  (loss, _), grads = _dp(params, batch)
  (ref_loss, _), ref = _dp(params, clean)
  assert np.isfinite(loss) and loss == pytest.approx(float(ref_loss))
  for k in ref:
    np.testing.assert_allclose(grads[k], ref[k], rtol=1e-6)


def test_microbatches_give_the_same_sum():
  params, batch = _params(), _batch(n_real=7, rows=8)
  (l1, _), g1 = _dp(params, batch, clip_norm=0.7, expected_batch_size=4.0)
  (l2, _), g2 = _dp(params, batch, clip_norm=0.7, expected_batch_size=4.0, microbatches=4)
  np.testing.assert_allclose(l1, l2, rtol=1e-5)
  for k in g1:
    np.testing.assert_allclose(g1[k], g2[k], rtol=1e-5, atol=1e-6)


def test_noise_std_is_sigma_times_c_over_expected_batch():
  sigma, clip, expected = 1.7, 0.4, 8.0
  params = {"w": jnp.zeros(40_000)}

  def constant_loss(p, batch):  # zero gradient: what remains is the noise
    return jnp.sum(batch["_mask"]) * 0.0 + 0.0 * jnp.sum(p["w"]), ()
  batch = {"_mask": np.ones(4, np.float32)}
  step = jax.jit(lambda p, b, k: gradients.private_value_and_grad(
      k, constant_loss, p, b, clip_norm=clip, noise_multiplier=sigma,
      expected_batch_size=expected)[1])
  noise = np.asarray(step(params, batch, jax.random.PRNGKey(3))["w"]) * expected
  # std of 40k normals: relative standard error ~0.35 %
  assert np.std(noise) == pytest.approx(sigma * clip, rel=0.02)
  assert abs(np.mean(noise)) < 4 * sigma * clip / np.sqrt(noise.size)
  other = step(params, batch, jax.random.PRNGKey(4))
  assert abs(np.corrcoef(noise, np.asarray(other["w"]))[0, 1]) < 0.03  # fresh per key


@pytest.mark.slow  # ~6 s: builds engine state and compiles two train steps
def test_grad_rule_plugs_into_the_engine_gradient_step():
  """The engine's train step with the DP rule (clip inf, noise 0) = the ordinary step."""
  from tests.privacy.dp.tiny import TinyTask  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  from medjax.engine import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
  task = TinyTask(n=16)
  mesh = mesh_lib.make_mesh({"data": -1, "fsdp": 1})
  tx, schedule = optax.sgd(0.1), optax.constant_schedule(0.1)
  batch = task.source.batch(np.arange(6), 8)
  out = []
  for rule in (None, gradients.make_grad_rule(np.inf, 0.0, 6.0)):
    state, shardings, _ = steps.create_state(task, tx, batch, mesh, seed=0)
    step = steps.make_train_step(task, tx, schedule, mesh, shardings, grad_rule=rule)
    state, metrics = step(state, mesh_lib.shard_batch(batch, mesh))
    out.append((jax.device_get(state.params), float(metrics["loss"])))
  assert out[0][1] == pytest.approx(out[1][1], rel=1e-5)
  for a, b in zip(jax.tree.leaves(out[0][0]), jax.tree.leaves(out[1][0])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
