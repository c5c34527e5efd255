"""RDKit 2D descriptors and their training-split normalisation."""

import jax
import numpy as np
import pytest

from medjax.molecule import descriptors
from medjax.molecule import task as task_lib
from tests.molecule import fake_moleculenet
from tests.molecule.test_task import make_task


def test_hand_checked_values_and_invalid_rows():
  d = descriptors.compute(["CCO", "not a smiles", "c1ccccc1"])
  col = {n: i for i, n in enumerate(descriptors.NAMES)}
  assert d[0, col["MolWt"]] == pytest.approx(46.069, abs=0.01)
  assert d[2, col["NumAromaticRings"]] == 1 and d[0, col["NumHDonors"]] == 1
  assert np.isnan(d[1]).all()


def test_normaliser_uses_training_statistics_only():
  rng = np.random.default_rng(0)
  train = rng.normal(5.0, 2.0, size=(500, 3))
  train[:, 2] = 7.0  # constant column
  train[0, 1] = np.nan
  norm = descriptors.Normalizer.fit(train)
  z = norm(train)
  assert abs(z[:, 0].mean()) < 0.05 and abs(z[:, 0].std() - 1) < 0.05
  assert z[0, 1] == 0.0 and not z[:, 2].any()  # NaN and constant columns -> 0
  outlier = norm(np.array([[1e9, 5.0, 7.0]]))
  assert outlier[0, 0] == pytest.approx((norm.high[0] - norm.mean[0]) / norm.std[0])
  again = descriptors.Normalizer.from_state(norm.state())
  np.testing.assert_array_equal(again(train), z)


def test_descriptors_reach_the_model_head(tmp_path):
  data_dir = fake_moleculenet.write_all(str(tmp_path / "data"))
  task = make_task(data_dir, tmp_path, dataset="esol", descriptors=True)
  batch = task.example_batch(8)
  assert batch["descriptors"].shape[-1] == len(descriptors.NAMES)
  inputs = task.model_inputs(batch)
  variables = jax.eval_shape(task.model.init, jax.random.key(0), **inputs)
  head_in = variables["params"]["MLPHead_0"]["Dense_0"]["kernel"].shape[0]
  assert head_in == task.cfg.hidden + len(descriptors.NAMES)
  assert task_lib.ModelSpec.from_metadata(task.metadata()).descriptor_normaliser is not None
