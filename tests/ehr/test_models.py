"""Models: GRU-D against a numpy reference, padding invariance, RETAIN decomposition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.ehr.attribution import WithAttribution
from medjax.ehr.models import GRUD, GRUDCell, RETAIN, RNNClassifier, TransformerClassifier

B, T, V, H = 2, 6, 3, 4


def _binned(seed, t=T):
  k = jax.random.split(jax.random.key(seed), 3)
  mask = (jax.random.uniform(k[1], (B, t, V)) > 0.4).astype(jnp.float32)
  values = jax.random.normal(k[0], (B, t, V)) * mask
  delta = jax.random.uniform(k[2], (B, t, V)) * 5
  return values, mask, delta, jnp.ones((B, 2))


def _numpy_grud_step(p, h, x_last, x, m, delta):
  sig = lambda a: 1 / (1 + np.exp(-a))
  gamma_x = np.exp(-np.maximum(0, p["decay_x_w"] * delta + p["decay_x_b"]))
  gamma_h = np.exp(-np.maximum(0, delta @ p["decay_h"]["kernel"] + p["decay_h"]["bias"]))
  x_mean = 0.0
  x_hat = m * x + (1 - m) * (gamma_x * x_last + (1 - gamma_x) * x_mean)
  h_hat = gamma_h * h
  w_in, b_in = p["input"]["kernel"], p["input"]["bias"]
  u_zr, u_n = p["hidden_zr"]["kernel"], p["hidden_n"]["kernel"]
  pre = np.concatenate([x_hat, m], -1) @ w_in + b_in
  z = sig(pre[:, :H] + h_hat @ u_zr[:, :H])
  r = sig(pre[:, H:2 * H] + h_hat @ u_zr[:, H:])
  n = np.tanh(pre[:, 2 * H:] + (r * h_hat) @ u_n)
  return (1 - z) * h_hat + z * n, np.where(m > 0, x, x_last)


def test_grud_two_steps_match_numpy():
  cell = GRUDCell(H, V)
  values, mask, delta, _ = _binned(0)
  carry = cell.initialize_carry(None, (B, 3 * V))
  inputs = [jnp.concatenate([values[:, t], mask[:, t], delta[:, t]], -1) for t in range(2)]
  params = jax.jit(cell.init)(jax.random.key(1), carry, inputs[0])
  # Random, non-trivial decay parameters (init values would hide the decay terms).
  params = jax.tree.map(lambda a: a + 0.3 * jax.random.uniform(jax.random.key(2), a.shape),
                        params)
  p = jax.tree.map(np.asarray, params["params"])
  h, x_last = np.zeros((B, H)), np.zeros((B, V))
  step = jax.jit(cell.apply)
  for t in range(2):
    carry, out = step(params, carry, inputs[t])
    h, x_last = _numpy_grud_step(p, h, x_last, np.asarray(values[:, t]),
                                 np.asarray(mask[:, t]), np.asarray(delta[:, t]))
    np.testing.assert_allclose(out, h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry[1], x_last, rtol=1e-6)
  # The decays matter: a reference without them (gamma = 1) gives another state.
  no_decay = jax.tree.map(lambda a: a, p)
  no_decay["decay_x_b"] = no_decay["decay_x_b"] - 1e6
  no_decay["decay_h"] = {**p["decay_h"], "bias": p["decay_h"]["bias"] - 1e6}
  h2, x2 = np.zeros((B, H)), np.zeros((B, V))
  for t in range(2):
    h2, x2 = _numpy_grud_step(no_decay, h2, x2, np.asarray(values[:, t]),
                              np.asarray(mask[:, t]), np.asarray(delta[:, t]))
  assert np.abs(h2 - h).max() > 1e-3


@pytest.mark.parametrize("model", [RNNClassifier("gru", H), RNNClassifier("lstm", H, 2),
                                   GRUD(H)], ids=["gru", "lstm", "grud"])
def test_recurrent_padding_does_not_change_prediction(model):
  values, mask, delta, static = _binned(3)
  params = jax.jit(model.init)(jax.random.key(0), values, mask, delta, static)
  apply = jax.jit(model.apply)
  plain = apply(params, values, mask, delta, static)["logits"]
  garbage = lambda a: jnp.concatenate([a, 7.0 + jnp.ones((B, 5, V))], 1)
  padded = apply(params, garbage(values), garbage(mask), garbage(delta), static,
                 lengths=jnp.full((B,), T))["logits"]
  np.testing.assert_allclose(padded, plain, rtol=1e-5, atol=1e-6)


def test_transformer_padding_does_not_change_prediction():
  model = TransformerClassifier(dim=16, heads=2, layers=2, mlp_dim=32)
  values, mask, _, static = _binned(4)
  times = jnp.cumsum(jnp.ones((B, T)), 1)
  token_mask = jnp.ones((B, T)).at[1, 4:].set(0)  # example 1 already has 2 padding tokens
  params = jax.jit(model.init)(jax.random.key(0), values, mask, times, token_mask, static)
  apply = jax.jit(model.apply)
  plain = apply(params, values, mask, times, token_mask, static)
  pad = lambda a, fill: jnp.concatenate([a, jnp.full((B, 7) + a.shape[2:], fill)], 1)
  padded = apply(params, pad(values, 3.0), pad(mask, 1.0), pad(times, 9.0),
                 pad(token_mask, 0.0), static)
  np.testing.assert_allclose(padded["logits"], plain["logits"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(padded["attention"][:, :T], plain["attention"], atol=1e-6)
  assert float(jnp.abs(padded["attention"][:, T:]).max()) == 0.0
  np.testing.assert_allclose(plain["attention"].sum(-1), 1.0, rtol=1e-5)


def _codes():
  codes = jnp.array([[[3, 4, 0], [5, 0, 0]], [[6, 7, 8], [0, 0, 0]]], jnp.int32)
  visit_mask = jnp.array([[1, 1], [1, 0]], jnp.float32)
  visit_times = jnp.array([[0.0, 10.0], [0.0, 0.0]])
  return codes, visit_mask, visit_times


def test_retain_padding_and_exact_decomposition():
  model = RETAIN(vocab_size=10, embed_dim=8, hidden=6)
  codes, visit_mask, visit_times = _codes()
  params = jax.jit(model.init)(jax.random.key(0), codes, visit_mask, visit_times)
  apply = jax.jit(model.apply)
  out = apply(params, codes, visit_mask, visit_times)
  bias = params["params"]["logit"]["bias"][0]
  np.testing.assert_allclose(out["code_contributions"].sum((1, 2)) + bias, out["logits"],
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["visit_attention"].sum(-1), 1.0, rtol=1e-6)
  padded = apply(params, jnp.pad(codes, ((0, 0), (0, 3), (0, 4))),
                 jnp.pad(visit_mask, ((0, 0), (0, 3))),
                 jnp.pad(visit_times, ((0, 0), (0, 3)), constant_values=5.0))
  np.testing.assert_allclose(padded["logits"], out["logits"], rtol=1e-5, atol=1e-6)
  # Reverse-time RNN: the first visit's attention depends on the later visit.
  alone = apply(params, codes[:, :1], visit_mask[:, :1], visit_times[:, :1])
  assert not np.allclose(alone["logits"][0], out["logits"][0])


def test_attribution_is_gradient_x_input():
  model = WithAttribution(GRUD(H))
  values, mask, delta, static = _binned(5)
  inputs = dict(values=values, mask=mask, delta=delta, static=static)
  params = jax.jit(model.init)(jax.random.key(0), **inputs)
  assert list(params["params"]) == ["backbone"]  # checkpoints of earlier runs still load
  weights = jnp.array([1.0, 0.0])
  out = jax.jit(lambda p, b: model.apply(p, **b))(params, {**inputs, "attribute": weights})
  grad = jax.jit(jax.grad(lambda x: jnp.sum(
      model.apply(params, **{**inputs, "values": x})["logits"] * weights)))(values)
  np.testing.assert_allclose(out["attribution"], grad * values, rtol=1e-5, atol=1e-7)
  assert float(jnp.abs(out["attribution"][0]).max()) > 0.0
  assert float(jnp.abs(out["attribution"][1]).max()) == 0.0  # example 1 not attributed
