"""mTAN: multi-time attention against numpy, invariance to padding, unobserved entries
and token order, and one jitted training step of the EHR task."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import ehr as ehr_configs
from medjax.engine import mesh as mesh_lib
from medjax.engine import steps
from medjax.engine.errors import InputError
from medjax.ehr import task as task_lib
from medjax.ehr.models import MTAN
from medjax.ehr.models.mtan import MultiTimeAttention, masked_time_attention

B, L, V, K = 2, 5, 3, 4


def _numpy_attention(p, query, key, values, observed, heads):
  """Direct multi-time attention: per (head, reference time, variable) a softmax over
  that variable's observed tokens only."""
  e = p["time_query"]["kernel"].shape[0]
  d = e // heads
  q = (query @ p["time_query"]["kernel"] + p["time_query"]["bias"]).reshape(K, heads, d)
  k = (key @ p["time_key"]["kernel"] + p["time_key"]["bias"]).reshape(B, L, heads, d)
  out = np.zeros((B, K, heads, 2 * V))
  token = np.zeros((B, L))
  for b in range(B):
    seen = [v for v in range(V) if observed[b, :, v].any()]
    for h in range(heads):
      for r in range(K):
        s = k[b, :, h] @ q[r, h] / np.sqrt(d)
        for v in seen:
          rows = np.flatnonzero(observed[b, :, v])
          w = np.exp(s[rows] - s[rows].max())
          w /= w.sum()
          out[b, r, h, v] = w @ values[b, rows, v]
          out[b, r, h, V + v] = 1.0  # the attended mask channel
          token[b, rows] += w / (heads * K * len(seen))
  x = out.reshape(B, K, heads * 2 * V)
  return x @ p["output"]["kernel"] + p["output"]["bias"], token


def test_multi_time_attention_matches_numpy():
  rng = np.random.default_rng(0)
  query = 2.0 * rng.normal(size=(K, 8)).astype(np.float32)
  key = 2.0 * rng.normal(size=(B, L, 8)).astype(np.float32)
  values = rng.normal(size=(B, L, V)).astype(np.float32)
  observed = (rng.uniform(size=(B, L, V)) > 0.4).astype(np.float32)
  observed[1, :, 2] = 0.0  # a variable never observed in stay 1
  observed[0, :, 0] = [1, 1, 1, 1, 1]  # and one observed everywhere
  observed[1, 4] = 0.0  # a token with nothing observed (padding)
  module = MultiTimeAttention(embed_time=8, heads=2, features=5)
  params = jax.jit(module.init)(jax.random.key(0), query, key, values, observed)
  params = jax.tree.map(lambda a: a + 0.2 * rng.normal(size=a.shape).astype(np.float32),
                        params)  # non-zero biases too
  out, attention = jax.jit(module.apply)(params, query, key, values, observed)
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params["params"])
  expected, token = _numpy_attention(p, query, key, values, observed, heads=2)
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(attention, token, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.asarray(attention).sum(-1), 1.0, rtol=1e-5)
  # The per-variable masking matters: one softmax over all tokens gives other numbers.
  shared = np.ones_like(observed) * observed.any(-1, keepdims=True)
  other, _ = _numpy_attention(p, query, key, values * observed, shared, heads=2)
  assert np.abs(other - expected).max() > 1e-2


def test_far_apart_scores_stay_exact_and_finite():
  # One shift for all variables would underflow variable 1 (scores ~100 below the top).
  scores = jnp.array([0.0, -95.0, -96.0, -300.0]).reshape(1, 1, 1, 4)
  values = jnp.array([[[2.0, 0.0], [0.0, 3.0], [0.0, 5.0], [7.0, 0.0]]])
  observed = jnp.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]])
  fn = jax.jit(lambda s: masked_time_attention(s, values, observed)[0])
  w = 1 / (1 + np.exp(-1.0))  # softmax([-95, -96])[0]
  np.testing.assert_allclose(fn(scores)[0, 0, 0], [2.0, 3 * w + 5 * (1 - w), 1, 1],
                             rtol=1e-6)
  grad = jax.jit(jax.grad(lambda s: fn(s)[..., 1].sum()))(scores)
  # d(3 w1 + 5 w2)/ds: w1 (3 - f) and w2 (5 - f), f the attended value.
  np.testing.assert_allclose(grad[0, 0, 0], [0, -2 * w * (1 - w), 2 * w * (1 - w), 0],
                             rtol=1e-5, atol=1e-12)


@pytest.fixture(scope="module")
def tiny_mtan():
  model = MTAN(hidden=8, ref_points=6, embed_time=8, heads=2, classifier_hidden=8)
  rng = np.random.default_rng(1)
  times = np.sort(rng.uniform(0, 48, (B, L)), 1).astype(np.float32)
  mask = (rng.uniform(size=(B, L, V)) > 0.5).astype(np.float32)
  mask[:, 0, 0] = 1.0
  token_mask = np.ones((B, L), np.float32)
  token_mask[1, 3:] = 0.0  # stay 1 has two padding tokens
  mask *= token_mask[..., None]
  inputs = dict(values=rng.normal(size=(B, L, V)).astype(np.float32) * mask, mask=mask,
                times=times, token_mask=token_mask, static=rng.normal(size=(B, 2)))
  params = jax.jit(model.init)(jax.random.key(0), **inputs)
  return jax.jit(model.apply), params, inputs


def test_padding_and_unobserved_entries_do_not_change_output(tiny_mtan):
  apply, params, inputs = tiny_mtan
  plain = apply(params, **inputs)
  rng = np.random.default_rng(2)
  noise = rng.normal(size=(B, L + 4, V)).astype(np.float32) * 5
  pad = lambda a, fill: np.concatenate([a, np.full((B, 4) + a.shape[2:], fill, a.dtype)], 1)
  mask = pad(inputs["mask"], 1.0)
  token_mask = pad(inputs["token_mask"], 0.0)
  mask[1, 3:5] = 1.0  # stay 1's own padding rows say "observed": token_mask overrules
  observed = inputs["mask"] > 0
  values = np.where(pad(observed, False), pad(inputs["values"], 0.0), noise)
  times = pad(inputs["times"], 0.0)
  times[1, 3:] = rng.uniform(0, 48, L + 1)
  perturbed = apply(params, values=values, mask=mask, times=times, token_mask=token_mask,
                    static=inputs["static"])
  np.testing.assert_allclose(perturbed["logits"], plain["logits"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(perturbed["attention"][:, :L], plain["attention"], atol=1e-6)
  assert float(jnp.abs(perturbed["attention"][:, L:]).max()) == 0.0
  assert float(jnp.abs(perturbed["attention"][1, 3:]).max()) == 0.0
  # An observed value does change the prediction.
  changed = dict(inputs, values=inputs["values"].copy())
  changed["values"][0, 0, 0] += 3.0
  assert np.abs(np.asarray(apply(params, **changed)["logits"] - plain["logits"]))[0] > 1e-4


def test_token_order_does_not_change_output(tiny_mtan):
  apply, params, inputs = tiny_mtan
  plain = apply(params, **inputs)
  order = np.array([[4, 2, 0, 3, 1], [1, 4, 3, 0, 2]])  # stay 1: padding rows moved too
  take = lambda a: np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), 1)
  shuffled = {k: take(v) if k != "static" else v for k, v in inputs.items()}
  out = apply(params, **shuffled)
  np.testing.assert_allclose(out["logits"], plain["logits"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["attention"], take(np.asarray(plain["attention"])),
                             atol=1e-6)
  # The times do matter: the same values at other times give another prediction.
  moved = dict(inputs, times=inputs["times"] * 0.5)
  assert np.abs(np.asarray(apply(params, **moved)["logits"] - plain["logits"])).max() > 1e-4


@pytest.mark.parametrize("dtype", [  # bfloat16: a second compilation, ~8 s
    "float32", pytest.param("bfloat16", marks=pytest.mark.slow)])
def test_one_jitted_train_step_on_quick_data(dtype):
  config = ehr_configs.get_config("quick")
  config.compute_dtype = dtype
  config.optimizer.warmup_steps = 0  # a first step that moves the parameters
  config.task.update(dict(model="mtan", synthetic_stays=40, hidden=8, heads=1,
                          ref_points=8, embed_time=8, classifier_hidden=8))
  task = task_lib.EhrTask(config.task, batch_size=8)
  mesh = mesh_lib.make_mesh({"data": -1})
  state, train_step, _ = steps.build(task, config, mesh, total_steps=10)
  batch = next(iter(task.train_dataset(8, seed=0)))
  assert batch["values"].shape[1] % config.task.pad_multiple == 0  # padded tokens
  before = jax.tree.map(np.asarray, state.params)
  state, metrics = train_step(state, mesh_lib.shard_batch(batch, mesh))
  assert np.isfinite(float(metrics["loss"])) and float(metrics["grad_norm"]) > 0
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - b).max()), state.params,
                       before)
  assert moved["backbone"]["attention"]["time_query"]["kernel"] > 0  # attention trains


def test_heads_must_divide_the_time_embedding():
  with pytest.raises(InputError, match="task.embed_time=8 is not a multiple of task.heads=3"):
    MultiTimeAttention(embed_time=8, heads=3).init(
        jax.random.key(0), np.zeros((K, 8)), np.zeros((B, L, 8)), np.zeros((B, L, V)),
        np.zeros((B, L, V)))
