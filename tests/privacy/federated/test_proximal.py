"""FedProx's proximal term: its gradient, and the wrapped engine step (mu = 0: unchanged)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from medjax.engine import mesh as mesh_lib
from medjax.engine import steps
from medjax.engine.errors import InputError
from medjax.privacy.federated import trainer
from medjax.privacy.federated.proximal import ProximalTask, proximal_term
from tests.engine.toy_task import ToyTask, toy_config


def test_gradient_of_the_term_is_mu_times_the_difference():
  rng = np.random.default_rng(0)
  w = {"a": rng.normal(size=(3, 2)), "b": {"c": rng.normal(size=4)}}
  g = jax.tree.map(lambda x: x + rng.normal(size=x.shape), w)
  mu = 0.37
  grad = jax.grad(proximal_term)(jax.tree.map(jnp.asarray, w), g, mu)
  for got, wi, gi in zip(jax.tree.leaves(grad), jax.tree.leaves(w), jax.tree.leaves(g)):
    np.testing.assert_allclose(got, mu * (wi - gi), rtol=1e-6)
  value = proximal_term(w, g, mu)
  expected = 0.5 * mu * sum(np.sum((a - b) ** 2) for a, b in
                            zip(jax.tree.leaves(w), jax.tree.leaves(g)))
  np.testing.assert_allclose(value, expected, rtol=1e-6)


def _sgd_config():
  return toy_config(**{"optimizer.name": "sgd", "optimizer.weight_decay": 0.0,
                       "optimizer.schedule": "constant", "optimizer.learning_rate": 0.1,
                       "optimizer.grad_clip_norm": 0.0, "optimizer.warmup_steps": 0})


def _build(task, config, mesh):
  state, train_step, _ = steps.build(task, config, mesh)
  return jax.device_get(state), train_step


def _step(host_state, train_step, batch, extra=None):
  state = host_state if extra is None else host_state.replace(
      extra={**host_state.extra, **extra})
  state, metrics = train_step(jax.device_put(state), batch)  # the input is donated
  return jax.device_get(state.params), jax.device_get(metrics)


@pytest.mark.slow
def test_jitted_train_step_adds_mu_times_difference_and_mu_zero_is_the_plain_step():
  config = _sgd_config()
  mesh = mesh_lib.make_mesh({"data": 1, "fsdp": 1}, devices=jax.devices()[:1])
  inner = ToyTask()
  batch = mesh_lib.shard_batch(inner.example_batch(config.batch_size), mesh)
  start, plain_step = _build(inner, config, mesh)
  plain, _ = _step(start, plain_step, batch)
  prox_start, prox_step = _build(ProximalTask(inner), config, mesh)
  w0 = start.params
  shift = jax.tree.map(lambda x: 0.5 * np.ones_like(x), w0)
  anchor = jax.tree.map(lambda x, s: x + s, w0, shift)
  zero, metrics0 = _step(prox_start, prox_step, batch, {"anchor": anchor, "mu": np.float32(0)})
  prox, metrics = _step(prox_start, prox_step, batch, {"anchor": anchor, "mu": np.float32(2)})
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(zero)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  # SGD (first step, momentum trace 0): w1 = w0 - lr * (grad + mu (w0 - anchor)).
  for p, z, s in zip(jax.tree.leaves(prox), jax.tree.leaves(zero), jax.tree.leaves(shift)):
    np.testing.assert_allclose(p - z, -0.1 * 2.0 * (-s), rtol=1e-4, atol=1e-6)
  n = sum(x.size for x in jax.tree.leaves(w0))
  np.testing.assert_allclose(metrics["proximal"], 0.5 * 2.0 * 0.25 * n, rtol=1e-5)
  assert metrics0["proximal"] == 0.0


def test_federated_rounds_refuse_a_learning_rate_schedule():
  trainer._check_optimizer(ml_collections.ConfigDict(dict(schedule="constant",
                                                          warmup_steps=0)))
  for schedule, warmup in (("cosine", 0), ("constant", 10)):
    with pytest.raises(InputError, match="config.optimizer.schedule"):
      trainer._check_optimizer(ml_collections.ConfigDict(dict(schedule=schedule,
                                                              warmup_steps=warmup)))
