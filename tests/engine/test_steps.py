import jax
import numpy as np
import pytest

from medjax.engine import mesh as mesh_lib
from medjax.engine import optim
from medjax.engine import steps
from tests.engine.toy_task import ToyTask, toy_config


def _run(mesh_config, devices, num_steps=3):
  task, config = ToyTask(), toy_config()
  mesh = mesh_lib.make_mesh(mesh_config, devices)
  tx, schedule = optim.make_optimizer(config.optimizer, config.total_steps)
  state, shardings, _ = steps.create_state(task, tx, task.example_batch(1), mesh, seed=0)
  train_step = steps.make_train_step(task, tx, schedule, mesh, shardings)
  data = iter(task.train_dataset(8, seed=0))
  losses = []
  for _ in range(num_steps):
    state, metrics = train_step(state, mesh_lib.shard_batch(next(data), mesh))
    losses.append(float(metrics["loss"]))
  return jax.device_get(state), losses, state


def test_eight_devices_match_one():
  assert jax.device_count() == 8
  one, losses_one, _ = _run({"data": 1}, jax.devices()[:1])
  eight, losses_eight, sharded = _run({"data": -1}, jax.devices())
  assert sharded.params["Dense_0"]["kernel"].sharding.mesh.size == 8
  np.testing.assert_allclose(losses_one, losses_eight, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), one, eight)


def test_fsdp_sharded_step_matches_replicated():
  replicated, losses_r, _ = _run({"data": -1}, jax.devices())
  fsdp, losses_f, state = _run({"data": 2, "fsdp": 4}, jax.devices())
  kernel = state.params["Dense_0"]["kernel"]  # (4, 16): 16 is split over fsdp=4
  assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp")
  assert kernel.addressable_shards[0].data.shape == (4, 4)
  np.testing.assert_allclose(losses_r, losses_f, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               replicated, fsdp)


def test_predict_pads_to_device_multiple():
  task = ToyTask()
  mesh = mesh_lib.make_mesh({"data": -1})
  config = toy_config()
  tx, _ = optim.make_optimizer(config.optimizer, config.total_steps)
  state, _, _ = steps.create_state(task, tx, task.example_batch(1), mesh, seed=0)
  predict = steps.make_predict_fn(task, mesh)
  full = predict(state, {"x": task.x[:16]})
  odd = predict(state, {"x": task.x[:5]})
  assert odd.shape == (5,)
  np.testing.assert_allclose(odd, full[:5], rtol=1e-6)


@pytest.mark.parametrize("cfg,msg", [({"data": 3}, "does not fit"),
                                     ({"data": -1, "fsdp": -1}, "at most one"),
                                     ({"model": 2}, "unknown axes")])
def test_bad_mesh_config(cfg, msg):
  with pytest.raises(ValueError, match=msg):
    mesh_lib.make_mesh(cfg)


def test_engine_mixed_precision_keeps_float32_parameters():
  task, config = ToyTask(), toy_config()
  mesh = mesh_lib.make_mesh({"data": -1})
  tx, schedule = optim.make_optimizer(config.optimizer, config.total_steps)
  batch = mesh_lib.shard_batch(next(iter(task.train_dataset(8, seed=0))), mesh)
  seen = {}
  for dtype in ("float32", "bfloat16"):
    state, shardings, _ = steps.create_state(task, tx, task.example_batch(1), mesh, seed=0)
    apply = steps.make_apply(task, dtype)
    out = jax.jit(lambda s, b: apply({"params": s.params, **s.model_state}, b,
                                     train=False))(state, batch)
    assert out.dtype == np.float32
    train_step = steps.make_train_step(task, tx, schedule, mesh, shardings, dtype)
    state, metrics = train_step(state, batch)
    assert state.params["Dense_0"]["kernel"].dtype == np.float32
    seen[dtype] = (np.asarray(out), float(metrics["loss"]))
  (out32, loss32), (out16, loss16) = seen["float32"], seen["bfloat16"]
  assert not np.array_equal(out32, out16)  # really computed in bfloat16 ...
  np.testing.assert_allclose(out16, out32, rtol=0.05, atol=0.05)  # ... to its precision
  np.testing.assert_allclose(loss16, loss32, rtol=0.05)
