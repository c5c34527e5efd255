"""Logical-axis rules: naming, rule priority, coverage of every medjax model, and an
FSDP-sharded step of a real model that equals the replicated step."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from experiments.configs import ehr as ehr_configs
from experiments.configs import molecule as molecule_configs
from medjax.engine import config as config_lib
from medjax.engine import mesh as mesh_lib
from medjax.engine import partitioning
from medjax.engine import steps
from medjax.ehr import task as ehr_task
from medjax.ehr.models import RETAIN
from medjax.molecule import task as molecule_task
from medjax.segmentation import unet
from tests.molecule import fake_moleculenet

FSDP = {"data": 2, "fsdp": 4}


@pytest.mark.parametrize("path,ndim,axes", [
    ("params/Conv_0/kernel", 4, ("window", "window", "in", "out")),
    ("opt_state/0/mu/Dense_1/kernel", 2, ("in", "out")),
    ("params/block_0/MultiHeadDotProductAttention_0/query/kernel", 3,
     ("embed", "heads", "head_dim")),
    ("params/attn/out/kernel", 3, ("heads", "head_dim", "embed")),
    ("params/attn/key/bias", 2, ("heads", "head_dim")),
    ("params/embed/embedding", 2, ("vocab", "embed")),
    ("params/LayerNorm_0/scale", 1, ("vector",)),
    ("opt_state/0/count", 0, ())])
def test_logical_names(path, ndim, axes):
  assert partitioning.logical_axes(path, ndim) == axes


def test_rules_in_priority_order_with_divisibility_fallback():
  mesh = mesh_lib.make_mesh(FSDP)
  rules = partitioning.DEFAULT_RULES
  spec = lambda axes, shape: partitioning.partition_spec(axes, shape, mesh, rules)
  assert spec(("window", "window", "in", "out"), (3, 3, 16, 32)) == P(None, None, None, "fsdp")
  # 2 output classes do not split 4 ways: the input features are split instead.
  assert spec(("window", "window", "in", "out"), (1, 1, 16, 2)) == P(None, None, "fsdp", None)
  assert spec(("window", "in", "out"), (3, 3, 2)) == P(None, None, None)  # replicated
  assert spec(("vector",), (64,)) == P(None)
  with pytest.raises(ValueError, match="unknown logical axis 'mlp'"):
    partitioning.partition_spec(("in",), (8,), mesh, (("mlp", "fsdp"),))
  with pytest.raises(ValueError, match="no axis 'model'"):
    partitioning.partition_spec(("in",), (8,), mesh, (("in", "model"),))


def _abstract_params(model, **inputs):
  rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
  return jax.eval_shape(lambda: model.init(rngs, **inputs, train=False))["params"]


def _ehr(model):
  cfg = ehr_configs.get_config("quick").task
  cfg.update(dict(synthetic_stays=40, model=model, hidden=16))
  task = ehr_task.EhrTask(cfg, batch_size=8)
  return task.model, task.model_inputs(task.example_batch(2))


def _molecule(model, tmp_path):
  cfg = molecule_configs.task_config()
  cfg.update(dict(dataset="esol", data_dir=fake_moleculenet.write_all(str(tmp_path / "d")),
                  cache_dir=str(tmp_path / "cache"), model=model, hidden=16,
                  head_hidden=16, depth=2))
  task = molecule_task.MoleculeTask(cfg, batch_size=8)
  return task.model, task.model_inputs(task.example_batch(8))


def _all_models(tmp_path):
  image2d, image3d = np.zeros((1, 16, 16, 1), np.float32), np.zeros((1, 8, 8, 8, 1), np.float32)
  codes = np.ones((2, 3, 4), np.int32)
  yield "unet2d", unet.UNet(num_classes=2, features=(8, 16)), {"image": image2d}
  yield "unet3d", unet.UNet(num_classes=2, features=(4, 8), spatial_dims=3), {"image": image3d}
  for name in ("gru", "lstm", "grud", "transformer"):
    yield (name, *_ehr(name))
  yield "retain", RETAIN(vocab_size=16, embed_dim=8, hidden=8), {
      "codes": codes, "visit_mask": np.ones((2, 3), np.float32),
      "visit_times": np.zeros((2, 3), np.float32)}
  for name in ("dmpnn", "gin", "attentivefp"):
    yield (name, *_molecule(name, tmp_path / name))


def test_rules_shard_every_medjax_model(tmp_path):
  mesh = mesh_lib.make_mesh(FSDP)
  seen = []
  for name, model, inputs in _all_models(tmp_path):
    params = _abstract_params(model, **inputs)
    shardings = partitioning.tree_shardings(params, mesh)
    total = sharded = 0
    for (path, leaf), sharding in zip(jax.tree_util.tree_flatten_with_path(params)[0],
                                      jax.tree.leaves(shardings)):
      axes = partitioning.logical_axes(partitioning.path_str(path), leaf.ndim)
      assert len(axes) == leaf.ndim and None not in axes, (name, path)
      total += leaf.size
      if "fsdp" in sharding.spec:
        sharded += leaf.size
        dim = list(sharding.spec).index("fsdp")
        assert leaf.shape[dim] % 4 == 0
      elif leaf.ndim >= 2:  # a kernel left whole: none of its feature dims divides by 4
        assert all(leaf.shape[d] % 4 for d, a in enumerate(axes) if a != "window"), (
            name, path, leaf.shape)
    assert sharded / total > 0.5, (name, sharded / total)
    seen.append(name)
  assert seen == ["unet2d", "unet3d", "gru", "lstm", "grud", "transformer", "retain",
                  "dmpnn", "gin", "attentivefp"]


def _train(task, mesh_config, num_steps=3):
  config = config_lib.base_config()
  config.mesh = mesh_config
  # SGD with momentum, not Adam: some gradients here are zero up to rounding (an
  # attention key bias cannot change the softmax), and Adam would scale that
  # rounding noise, which differs with the reduction order, up to full steps.
  config.optimizer.update(name="sgd", learning_rate=0.1)
  mesh = mesh_lib.make_mesh(config.mesh)
  state, train_step, _ = steps.build(task, config, mesh, total_steps=10)
  data = iter(task.train_dataset(8, seed=0))
  losses = []
  for _ in range(num_steps):
    state, metrics = train_step(state, mesh_lib.shard_batch(next(data), mesh))
    losses.append(float(metrics["loss"]))
  return state, losses


@pytest.mark.slow  # end-to-end: run with -m slow (the default run stays under 10 min)
def test_fsdp_transformer_step_matches_replicated():
  cfg = ehr_configs.get_config("quick").task
  cfg.update(dict(synthetic_stays=40, model="transformer", hidden=16, heads=4))
  task = ehr_task.EhrTask(cfg, batch_size=8)
  replicated, losses_r = _train(task, {"data": -1, "fsdp": 1})
  sharded, losses_f = _train(task, FSDP)
  query = sharded.params["backbone"]["block_0"]["MultiHeadDotProductAttention_0"]["query"]
  assert query["kernel"].sharding.spec == P("fsdp", None, None)  # (embed 16, heads, dim)
  moments = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(sharded.opt_state)[0]
             if partitioning.path_str(path).endswith("trace/backbone/block_0/Dense_0/kernel")]
  assert len(moments) == 1
  assert moments[0].sharding.spec == P(None, "fsdp")  # optimiser state like its kernel
  assert losses_r[0] != losses_r[-1]
  np.testing.assert_allclose(losses_f, losses_r, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               jax.device_get(replicated.params), jax.device_get(sharded.params))
