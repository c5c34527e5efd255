"""Task-owned updates (Task.optimizer / init_extra / update) on the shared engine.

A two-player toy task (two parameter groups, two Adam optimisers stepped in turn,
as a GAN does) and per-environment `extra` state, checked against the same
maths written out by hand with optax, and for exact resume through the trainer.
"""

import signal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from medjax.engine import mesh as mesh_lib
from medjax.engine import optim
from medjax.engine import steps
from medjax.engine import train
from tests.engine.toy_task import ToyTask, latest_state, toy_config

_ENVS = 8


class _TwoHeads(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool):
    del train
    return {"a": nn.Dense(1, name="a")(x)[:, 0], "b": nn.Dense(1, name="b")(x)[:, 0]}


def _losses(outputs, batch):
  """a fits y; b fits a's (fixed) output: a leader and a follower, as in a GAN."""
  mask = batch["_mask"]
  loss_a = jnp.sum(mask * (outputs["a"] - batch["y"]) ** 2) / jnp.sum(mask)
  target = jax.lax.stop_gradient(outputs["a"])
  loss_b = jnp.sum(mask * (outputs["b"] - target) ** 2) / jnp.sum(mask)
  return loss_a, loss_b


def _alternate(apply_group, params, opt_state, tx, batch):
  """Steps group a on loss_a, then group b on loss_b with the new a."""
  new_opt, metrics = opt_state, {}
  for index, name in enumerate(("a", "b")):
    def loss_fn(group, batch, name=name, index=index):
      return _losses(apply_group(params, name, group, batch), batch)[index], ()
    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params[name], batch)
    updates, new_opt = tx.update({name: grads}, new_opt, params)
    params = {**params, name: optax.apply_updates(params[name], updates[name])}
    metrics[f"loss_{name}"] = loss
  return params, new_opt, metrics


class TwoPlayerTask(ToyTask):
  """The toy regression data, with two players and per-environment counters."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.model = _TwoHeads()

  def optimizer(self, optimizer_config, total_steps):
    del optimizer_config, total_steps
    return optim.partitioned({"a": optax.adam(0.05), "b": optax.adam(0.01, b1=0.5)}), (
        lambda step: 0.05)

  def init_extra(self, rng, params):
    return {"batched": {"count": jnp.zeros(_ENVS, jnp.int32),
                        "noise": jax.random.normal(rng, (_ENVS,))},
            "ema_a": params["a"]}

  def evaluators(self):
    return []

  def loss(self, outputs, batch):
    loss_a, loss_b = _losses(outputs, batch)
    return loss_a + loss_b, {}

  def update(self, state, batch, key, ctx):
    def apply_group(params, name, group, batch):
      return ctx.apply({"params": {**params, name: group}}, batch, train=True)
    params, opt_state, metrics = _alternate(apply_group, state.params, state.opt_state,
                                            ctx.tx, batch)
    extra = {"batched": {"count": state.extra["batched"]["count"] + 1,
                         "noise": jax.random.normal(key, (_ENVS,))},
             "ema_a": jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p,
                                   state.extra["ema_a"], params["a"])}
    metrics["loss"] = metrics["loss_a"] + metrics["loss_b"]
    return state.replace(params=params, opt_state=opt_state, extra=extra), metrics


def _numpy(tree):
  return jax.tree.map(np.asarray, tree)


def test_task_update_matches_the_same_maths_by_hand():
  task, config = TwoPlayerTask(), toy_config()
  mesh = mesh_lib.make_mesh(config.mesh)
  state, train_step, _ = steps.build(task, config, mesh)
  assert state.extra["batched"]["count"].sharding.spec == mesh_lib.batch_sharding(mesh).spec
  params, extra = _numpy(state.params), _numpy(state.extra)
  tx, _ = task.optimizer(None, 0)
  opt_state = tx.init(params)
  assert set(opt_state) == {"a", "b"}

  def apply_group(params, name, group, batch):
    return task.model.apply({"params": {**params, name: group}}, x=batch["x"], train=True)

  data = iter(task.train_dataset(config.batch_size, config.seed))
  for step in range(4):
    batch = next(data)
    state, metrics = train_step(state, mesh_lib.shard_batch(batch, mesh))
    params, opt_state, expected = _alternate(apply_group, params, opt_state, tx, batch)
    extra["ema_a"] = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, extra["ema_a"], params["a"])
    np.testing.assert_allclose(metrics["loss_a"], expected["loss_a"], rtol=1e-5)
    np.testing.assert_allclose(metrics["loss_b"], expected["loss_b"], rtol=1e-5)
    assert int(state.step) == step + 1
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6),
               _numpy(state.params), params)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6),
               _numpy(state.extra["ema_a"]), extra["ema_a"])
  np.testing.assert_array_equal(state.extra["batched"]["count"], np.full(_ENVS, 4))


def test_group_without_gradients_keeps_its_optimiser_state():
  tx = optim.partitioned({"a": optax.adam(0.1), "b": optax.adam(0.1)})
  params = {"a": jnp.ones(3), "b": jnp.ones(2)}
  state = tx.init(params)
  updates, new = tx.update({"a": jnp.ones(3)}, state, params)
  assert set(updates) == {"a"}
  jax.tree.map(np.testing.assert_array_equal, new["b"], state["b"])
  assert int(new["a"][0].count) == 1


def test_task_update_resumes_exactly_after_sigterm(tmp_path):
  config = toy_config()
  train.train_and_evaluate(config, str(tmp_path / "a"), TwoPlayerTask())
  straight = latest_state(str(tmp_path / "a"))

  reads = {"n": 0}
  def sigterm_once():
    reads["n"] += 1
    if reads["n"] == 8 * 5 + 1:  # while fetching the 6th batch
      signal.raise_signal(signal.SIGTERM)
  out = train.train_and_evaluate(config, str(tmp_path / "b"),
                                 TwoPlayerTask(on_element=sigterm_once))
  assert out == {"preempted_at_step": 6.0}
  train.train_and_evaluate(config, str(tmp_path / "b"), TwoPlayerTask())
  resumed = latest_state(str(tmp_path / "b"))
  assert int(resumed["step"]) == 12
  np.testing.assert_array_equal(resumed["extra"]["batched"]["count"], np.full(_ENVS, 12))
  jax.tree.map(np.testing.assert_array_equal, straight, resumed)
