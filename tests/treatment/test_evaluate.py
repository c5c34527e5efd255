"""Evaluation: per-episode metrics against numpy, the non-finite stop, exact sepsis
survival of the policy and baselines against a linear solve, same-episode controls."""

import jax
import numpy as np
import pytest

from experiments.configs import treatment as configs
from medjax.treatment import baselines, evaluate, problems
from medjax.treatment.envs import sepsis, t1d
from tests.treatment import toy_mdp


def _trace(bg, done, clipped=None, finite=None, reward=None):
  shape = bg.shape
  zeros = np.zeros(shape)
  return evaluate.Trace(bg, zeros, zeros, zeros if reward is None else reward, done,
                        zeros if clipped is None else clipped,
                        np.ones(shape, bool) if finite is None else finite)


def test_episode_metrics_by_hand():
  # episode 0 runs 4 steps; episode 1 ends (done) at step 1, so steps 2-3 are not its own
  bg = np.array([[100.0, 35.0], [200.0, 60.0], [65.0, 500.0], [50.0, 500.0]])
  done = np.array([[0, 0], [0, 1], [0, 0], [0, 0]], bool)
  clipped = np.array([[1, 0], [0, 0], [2, 1], [0, 1]])
  reward = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 5.0], [1.0, 5.0]])
  out = evaluate.episode_metrics(_trace(bg, done, clipped, reward=reward), ("a", "b"))
  np.testing.assert_allclose(out["time_in_range"], [1 / 4, 0.0])
  np.testing.assert_allclose(out["time_below_70"], [2 / 4, 1.0])
  np.testing.assert_allclose(out["time_below_54"], [1 / 4, 1 / 2])
  np.testing.assert_allclose(out["time_above_180"], [1 / 4, 0.0])
  np.testing.assert_allclose(out["mean_bg"], [103.75, 47.5])
  np.testing.assert_allclose(out["severe_hypo"], [0.0, 1.0])  # 35 < 40 mg/dL
  np.testing.assert_allclose(out["pump_clipped"], [2 / 4, 0.0])
  np.testing.assert_allclose(out["return"], [4.0, 4.0])
  f = 1.509 * (np.log(bg[:, 0]) ** 1.084 - 5.381)
  np.testing.assert_allclose(out["lbgi"][0], np.mean(np.where(f < 0, 10 * f**2, 0)), rtol=1e-5)
  np.testing.assert_allclose(out["hbgi"][0], np.mean(np.where(f > 0, 10 * f**2, 0)), rtol=1e-5)


def test_a_nonfinite_state_inside_an_episode_names_patient_and_step():
  bg = np.full((5, 2), 120.0)
  finite = np.ones((5, 2), bool)
  finite[3, 1] = False
  with pytest.raises(t1d.NonFiniteStateError, match="child#004 at step 3"):
    evaluate.episode_metrics(_trace(bg, np.zeros((5, 2), bool), finite=finite),
                             ("adult#001", "child#004"))
  done = np.zeros((5, 2), bool)
  done[1, 1] = True  # after its episode ended, a bad state is not the episode's
  evaluate.episode_metrics(_trace(bg, done, finite=finite), ("adult#001", "child#004"))


def test_sepsis_survival_of_policy_and_baselines_is_exact(tmp_path):
  path = toy_mdp.write(tmp_path / "dynamics.npz")
  mdp = sepsis.load(path)
  ev = evaluate.SepsisEvaluator(mdp)
  logits = np.array([[2.0, -1.0], [0.0, 0.5], [-3.0, 1.0]] + [[0.0, 0.0]] * 3)
  results = dict(ev.run(lambda batch: (logits[batch["obs"]], None)))
  soft = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  np.testing.assert_allclose(results["ppo_survival"], toy_mdp.survival_np(path, soft),
                             rtol=1e-4)
  greedy = np.eye(2)[np.argmax(logits, 1)]
  np.testing.assert_allclose(results["ppo_greedy_survival"],
                             toy_mdp.survival_np(path, greedy), rtol=1e-4)
  np.testing.assert_allclose(results["random_survival"],
                             toy_mdp.survival_np(path, np.full((6, 2), 0.5)), rtol=1e-4)
  with np.load(path) as d:
    expert = d["expert_policy"]
  np.testing.assert_allclose(results["expert_survival"], toy_mdp.survival_np(path, expert),
                             rtol=1e-4)
  best = max(toy_mdp.survival_np(path, np.eye(2)[list(a) + [0, 0, 0]])
             for a in np.ndindex(2, 2, 2))  # every deterministic policy of the 3 live states
  np.testing.assert_allclose(results["value_iteration_survival"], best, rtol=1e-4)


@pytest.mark.slow
def test_controllers_see_the_same_episodes_whatever_the_chunking():
  c = configs.get_config("quick").task
  try:
    cohort = evaluate.make_cohort(c, "adult#001,child#002", "f", 2, 0)
  except Exception as e:  # pylint: disable=broad-except
    pytest.skip(f"no simglucose parameter files: {e}")
  dosing = problems.dosing(c)
  bb = lambda params, rows: baselines.BasalBolus(params, 3)  # noqa: E731
  whole = evaluate.closed_loop(dosing, cohort, bb, 20, chunk=4)
  parts = evaluate.closed_loop(dosing, cohort, bb, 20, chunk=3)
  jax.tree.map(np.testing.assert_array_equal, whole, parts)
  assert whole.bg.shape == (20, 4)
  # Equal key indices give identical days (PID tuning compares candidates on them).
  twice = evaluate.Cohort(cohort.env_names * 2, jax.tree.map(
      lambda x: np.concatenate([x, x]), cohort.params), cohort.key)
  doubled = evaluate.closed_loop(dosing, twice, bb, 20, chunk=4,
                                 key_index=np.tile(np.arange(4), 2))
  np.testing.assert_array_equal(doubled.bg[:, :4], doubled.bg[:, 4:])
  np.testing.assert_array_equal(doubled.bg[:, :4], whole.bg)
  # a pump rate far outside the pump's range is clipped, and counted
  over = lambda params, rows: _Constant(np.array([50.0, 0.0]))  # noqa: E731
  trace = evaluate.closed_loop(dosing, cohort, over, 5, chunk=4)
  assert dosing.task.env.pump.max_basal < 50.0
  np.testing.assert_allclose(trace.insulin, dosing.task.env.pump.max_basal)
  np.testing.assert_allclose(evaluate.episode_metrics(trace, cohort.env_names)["pump_clipped"], 1.0)


class _Constant:
  def __init__(self, action):
    self.action = action

  def init(self, num_envs):
    self.num = num_envs
    return ()

  def act(self, ctrl_state, obs, env_state):
    return ctrl_state, np.tile(self.action, (self.num, 1)).astype(np.float32)
