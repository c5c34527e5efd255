"""local_steps.run_steps: k engine steps from a state, the metrics' means, the NaN stop."""

import numpy as np
import pytest

from medjax.engine import local_steps
from medjax.engine import mesh as mesh_lib
from medjax.engine import steps
from medjax.engine import train
from tests.engine.toy_task import ToyTask, toy_config


def _run(task, num_steps):
  config = toy_config()
  mesh = mesh_lib.make_mesh(config.mesh)
  state, train_step, _ = steps.build(task, config, mesh)
  batches = iter(task.train_dataset(config.batch_size, seed=0))
  return state, local_steps.run_steps(train_step, state, batches, num_steps, mesh)


def test_runs_k_steps_and_averages_their_metrics():
  task = ToyTask()
  _, (state, metrics) = _run(task, 3)
  assert int(state.step) == 3
  # The same three steps by hand, from a fresh (identical) initial state.
  config = toy_config()
  mesh = mesh_lib.make_mesh(config.mesh)
  ref, train_step, _ = steps.build(task, config, mesh)
  batches = iter(task.train_dataset(config.batch_size, seed=0))
  losses = []
  for _ in range(3):
    ref, m = train_step(ref, mesh_lib.shard_batch(next(batches), mesh))
    losses.append(float(m["loss"]))
  np.testing.assert_allclose(metrics["loss"], np.mean(losses), rtol=1e-6)


def test_a_nan_loss_stops_naming_the_local_step():
  with pytest.raises(train.NonFiniteLossError, match=r"at step \d of 4 local steps"):
    _run(ToyTask(nan_after=8 * 2), 4)
