import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import generative as gan_configs
from medjax.engine import steps
from medjax.engine.errors import InputError
from medjax.generative import task as gan_task


def _config(**gan):
  c = gan_configs.get_config("quick")
  c.task.data.builder.update(num_train=8, num_val=2, size=16)
  c.task.gan.update(generator_features=(4, 4), spade_hidden=4, discriminator_features=(4, 8),
                    num_scales=1, noise_dim=3, **gan)
  return c


def _state(task):
  params = {"generator": {"w": jnp.ones(3)}, "discriminator": {"w": jnp.ones(2)},
            "generator_ema": {"w": jnp.zeros(3)}}
  tx, schedule = task.optimizer(None, 10)
  state = steps.TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state={},
                           opt_state=tx.init(params), rng=jnp.zeros(2, jnp.uint32))
  return state, steps.UpdateContext(apply=None, tx=tx, schedule=schedule,
                                    value_and_grad=steps.value_and_grad, gradient_step=None)


def test_each_optimiser_moves_only_its_network_with_its_own_rate():
  task = gan_task.GanTask(_config(g_learning_rate=0.1, d_learning_rate=0.3).task)
  state, ctx = _state(task)
  moved = task._step_group(state, "discriminator", {"w": jnp.ones(2)}, ctx)
  np.testing.assert_array_equal(moved.params["generator"]["w"], 1.0)
  # Adam's first step moves each weight by the learning rate (b1 = 0: sign of the grad).
  np.testing.assert_allclose(moved.params["discriminator"]["w"], 1.0 - 0.3, rtol=1e-5)
  moved = task._step_group(moved, "generator", {"w": -jnp.ones(3)}, ctx)
  np.testing.assert_allclose(moved.params["generator"]["w"], 1.1, rtol=1e-5)
  np.testing.assert_allclose(moved.params["discriminator"]["w"], 0.7, rtol=1e-5)


def test_ema_copies_the_generator_at_step_0_then_averages():
  task = gan_task.GanTask(_config(ema_decay=0.999).task)
  state, _ = _state(task)
  np.testing.assert_array_equal(task._ema(state)["w"], 1.0)
  later = state.replace(step=jnp.asarray(1000))  # decay min(0.999, 1001/1010)
  np.testing.assert_allclose(task._ema(later)["w"], 1.0 - 1001 / 1010, rtol=1e-5)


def test_divergence_names_the_failure():
  task = gan_task.GanTask(_config().task)
  assert task.divergence({"d_loss": 1.8, "sample_spread": 0.9}) is None
  assert "discriminator separates" in task.divergence({"d_loss": 1e-5, "sample_spread": 0.9})
  assert "mode collapse" in task.divergence({"d_loss": 1.0, "sample_spread": 0.01})


def test_unknown_loss_is_an_input_error():
  with pytest.raises(InputError, match="config.task.gan.loss"):
    gan_task.GanTask(_config(loss="wasserstein").task)


@pytest.mark.slow  # ~25 s: compiles the GAN's train step
def test_d_step_then_g_step_change_both_networks_and_report_finite_losses():
  task = gan_task.GanTask(_config().task)
  config = _config()
  state, train_step, _ = steps.build(task, config, _mesh())
  before = jax.device_get(state.params)
  batch = {"image": np.random.default_rng(0).uniform(size=(4, 16, 16, 1)).astype(np.float32),
           "label": np.zeros((4, 16, 16), np.int32), "valid": np.ones((4, 16, 16), np.float32),
           "_mask": np.ones(4, np.float32)}
  batch["label"][:, 4:12, 4:10] = 1
  state, metrics = train_step(state, batch)
  after = jax.device_get(state.params)
  for name in ("generator", "discriminator"):
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), before[name], after[name])
    assert any(jax.tree.leaves(changed)), name
  jax.tree.map(np.testing.assert_array_equal, after["generator_ema"], after["generator"])
  assert all(np.isfinite(float(metrics[k])) for k in ("loss", "d_loss", "g_loss"))


def _mesh():
  from medjax.engine import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
  return mesh_lib.make_mesh(_config().mesh)
