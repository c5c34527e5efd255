"""The treatment task on the engine: its update against agents.ppo, resume state,
patient lists, and the NaN guard."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import treatment as configs
from medjax.engine import mesh as mesh_lib
from medjax.engine import steps
from medjax.engine.errors import InputError
from medjax.treatment import problems
from medjax.treatment import task as task_lib
from medjax.treatment.agents import ppo
from medjax.treatment.agents.rollout import EpisodeStats
from tests.treatment import toy_mdp


def _sepsis_config(path):
  c = configs.get_config("sepsis_quick")
  c.task.sepsis_path = str(path)
  c.task.hidden = (8,)
  c.task.num_steps = 4
  c.task.num_minibatches = 2
  c.task.num_epochs = 2
  c.batch_size = 8  # the test session has 8 CPU devices
  return c


class _SameOptimizer(ppo.Ppo):
  tx = None

  @property
  def optimizer(self):
    return self.tx


@pytest.mark.slow  # compiles the engine step and agents.ppo: ~100 s on a busy 2-core CPU
def test_update_is_agents_ppo_update_with_the_engine_optimiser(tmp_path):
  config = _sepsis_config(toy_mdp.write(tmp_path / "dynamics.npz"))
  task = task_lib.TreatmentTask(config.task, config.batch_size)
  mesh = mesh_lib.make_mesh(config.mesh)
  state, train_step, _ = steps.build(task, config, mesh)
  tx, _ = task.optimizer(config.optimizer, config.total_steps)
  agent = _SameOptimizer(task.problem.env, task.problem.params, task.model, task.problem.space,
                         task.ppo)
  object.__setattr__(agent, "tx", tx)
  variables = {"params": jax.tree.map(np.asarray, state.params)}
  extra = jax.tree.map(np.asarray, state.extra["batched"])
  reference = ppo.PpoState(variables, tx.init(variables), extra["env_state"], extra["obs"],
                           EpisodeStats(extra["returns"], extra["lengths"]), jnp.zeros((), jnp.int32))
  for step in range(2):
    key = jax.random.fold_in(state.rng, state.step)
    batch = mesh_lib.shard_batch(next(iter(task.train_dataset(config.batch_size, 0))), mesh)
    state, metrics = train_step(state, batch)
    reference, expected = jax.jit(agent.update)(reference, key)
    np.testing.assert_allclose(metrics["loss"], expected["loss"], rtol=1e-4, atol=1e-6)
    assert int(state.step) == step + 1
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               jax.tree.map(np.asarray, state.params), reference.params["params"])
  np.testing.assert_array_equal(state.extra["batched"]["env_state"].s, reference.env_state.s)


def test_ticks_dataset_state_round_trips():
  data = iter(task_lib._TicksDataset(3))  # pylint: disable=protected-access
  for _ in range(5):
    batch = next(data)
  assert batch["tick"].shape == (3,)
  resumed = iter(task_lib._TicksDataset(3))  # pylint: disable=protected-access
  resumed.set_state(data.get_state())
  assert resumed.get_state() == {"count": 5}


def test_patient_ranges_expand_and_bad_ones_are_named():
  assert problems.expand_names("adult#001-003, child#010", "f") == (
      "adult#001", "adult#002", "adult#003", "child#010")
  with pytest.raises(InputError, match="config.task.f: empty range 'adult#005-002'"):
    problems.expand_names("adult#005-002", "f")
  with pytest.raises(InputError, match="config.task.f names no patient"):
    problems.expand_names(" , ", "f")


def test_unknown_patient_names_the_field_and_the_known_names():
  c = configs.get_config("quick").task
  try:
    problems.params_lib.simglucose_dir()
  except InputError:
    pytest.skip("simglucose's parameter files are not installed")
  with pytest.raises(InputError, match=r"config.task.test_groups: unknown name 'adult#011'"
                     r" in vpatient_params.csv; valid names: adolescent#001, .*adult#010"):
    problems.load_cohort(c, "adult#009-011", "test_groups")


def test_unknown_env_and_action_are_input_errors():
  c = configs.get_config("quick").task
  c.env = "mars"
  with pytest.raises(InputError, match="config.task.env: unknown 'mars'"):
    problems.build(c, 2)
  c = configs.get_config("quick").task
  c.action = "more"
  with pytest.raises(InputError, match="config.task.action: unknown 'more'"):
    problems.dosing(c)


class _Names:
  """Just what TreatmentTask._t1d_metrics reads."""
  ppo = ppo.PpoConfig(num_envs=3, num_steps=4, num_minibatches=1)
  problem = problems.Problem("t1d", None, None, 0, None, 5, ("adult#001", "adult#002",
                                                              "adult#003"))
  nonfinite = None
  _note_nonfinite = task_lib.TreatmentTask._note_nonfinite  # pylint: disable=protected-access


def test_a_nonfinite_state_makes_the_loss_nan_and_names_patient_and_step():
  finite = np.ones((4, 3), bool)
  finite[2:, 1] = False  # env 1 goes bad at rollout step 2 and stays bad
  infos = {"finite": jnp.asarray(finite), "clipped": jnp.asarray(np.eye(4, 3, dtype=np.int32)),
           "bg": jnp.full((4, 3), 100.0).at[0, 0].set(300.0)}
  holder = _Names()
  metrics = jax.jit(lambda i, s: task_lib.TreatmentTask._t1d_metrics(holder, i, s))(  # pylint: disable=protected-access
      infos, jnp.int32(6))
  jax.effects_barrier()
  assert np.isnan(metrics["nonfinite_guard"]) and int(metrics["nonfinite_envs"]) == 1
  np.testing.assert_allclose(metrics["pump_clipped"], 3 / 12)
  np.testing.assert_allclose(metrics["rollout_time_in_range"], 11 / 12)
  # update 7 (step 6) starts after 6 * 4 env steps; the bad one is its third
  assert holder.nonfinite == ("the glucose-insulin state of patient adult#002 (env 1) "
                              "became NaN/inf at env step 27 (rollout of update 7)")
  fine = jax.jit(lambda i, s: task_lib.TreatmentTask._t1d_metrics(holder, i, s))(  # pylint: disable=protected-access
      {**infos, "finite": jnp.ones((4, 3), bool)}, jnp.int32(0))
  assert float(fine["nonfinite_guard"]) == 0.0
