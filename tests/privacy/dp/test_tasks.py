"""The EHR and molecule tasks' training sources: one row per stay / molecule."""

import flax
import jax
import numpy as np
import pytest

from experiments.configs import ehr as ehr_configs
from experiments.configs import molecule as molecule_configs
from medjax.engine import steps
from medjax.engine.errors import InputError
from medjax.ehr import task as ehr_task
from medjax.molecule import batching
from medjax.molecule import task as molecule_task
from medjax.privacy.dp import gradients
from tests.molecule import fake_moleculenet


def test_ehr_source_pads_to_rows_with_one_shape_and_refuses_oversampling():
  cfg = ehr_configs.get_config("quick").task
  cfg.update(dict(synthetic_stays=60))
  task = ehr_task.EhrTask(cfg, batch_size=8)
  source = task.train_source()
  assert len(source) == len(task.splits["train"])
  a, b = source.batch([0, 3, 5], 8), source.batch([], 8)
  assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
  np.testing.assert_array_equal(a["_mask"], [1, 1, 1, 0, 0, 0, 0, 0])
  assert not b["_mask"].any()
  np.testing.assert_array_equal(a["values"][1], task.examples[task.splits["train"][3]]["values"])
  cfg.imbalance = "oversample"
  with pytest.raises(InputError, match="imbalance=oversample"):
    ehr_task.EhrTask(cfg, batch_size=8).train_source()


@pytest.mark.slow  # ~6 s: compiles a small D-MPNN's per-example gradients
def test_molecule_rows_are_molecules_and_their_gradients_are_per_molecule(tmp_path):
  cfg = molecule_configs.task_config()
  cfg.update(dict(dataset="esol", data_dir=fake_moleculenet.write_all(str(tmp_path / "m")),
                  cache_dir=str(tmp_path / "cache"), hidden=8, head_hidden=8, depth=2))
  task = molecule_task.MoleculeTask(cfg, batch_size=4)
  source = task.train_source()
  batch = source.batch([0, 2], 3)
  assert batch["_mask"].shape == (3, 1) and batch["_mask"].sum() == 2
  example = {k: v for k, v in task.example_batch(1).items() if v.dtype.kind in "biuf"}
  variables = flax.core.unfreeze(task.model.init(jax.random.PRNGKey(0),
                                                 **task.model_inputs(example), train=False))

  def loss_fn(params, b):
    return task.loss(task.model.apply({"params": params}, **task.model_inputs(b),
                                      train=False), b)
  _, dp_sum = gradients.private_value_and_grad(
      jax.random.PRNGKey(0), loss_fn, variables["params"], batch, clip_norm=np.inf,
      noise_multiplier=0.0, expected_batch_size=1.0)
  packer = task.packer(4)  # the ordinary layout: both molecules would share a block
  singles = [batching.sequential_batches(packer, [task.split["train"][i]], 1)[0]
             for i in (0, 2)]
  ref = [steps.value_and_grad(loss_fn, variables["params"],
                              {k: v for k, v in s.items() if v.dtype.kind in "biuf"})[1]
         for s in singles]
  for got, a, b in zip(jax.tree.leaves(dp_sum), *map(jax.tree.leaves, ref)):
    np.testing.assert_allclose(got, a + b, rtol=2e-4, atol=1e-6)
