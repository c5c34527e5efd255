"""Evaluators of the treatment task: held-out virtual patients, and exact sepsis survival.

T1D: a `Cohort` is fixed patients x episodes (each episode one patient on its own
random meal day(s) and CGM noise, from `seed`); every controller (the learned
policy, basal-bolus, PID) runs on exactly the same episodes (same meals, same
sensor noise draws). Per-episode metrics (`metrics.glycaemic_metrics` over the
episode's 3-min mean BG until it terminates) plus `severe_hypo` (the episode's BG
fell below 40 mg/dL or it ended low), `pump_clipped` (fraction of steps whose
basal or bolus the pump clipped) and `return`; means with 95% t intervals over
the episodes. A state that stops being finite within an episode raises
`t1d.NonFiniteStateError` naming the patient and step.

Sepsis: the policy's exact survival within the 500-step horizon (state-distribution
propagation), next to the random, expert (clinician) and value-iteration policies.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from medjax.engine.task import Evaluator
from medjax.treatment import baselines, metrics, problems, sepsis_eval
from medjax.treatment.agents import rollout
from medjax.treatment.envs import sepsis, t1d

SEVERE_BG = 40.0
REPORTED = ("time_in_range", "time_below_70", "time_below_54", "time_above_180",
            "time_above_250", "mean_bg", "lbgi", "hbgi", "risk_index", "severe_hypo",
            "pump_clipped", "return")
CONTROLLERS = ("ppo", "basal_bolus", "pid")


class Cohort(NamedTuple):
  env_names: tuple[str, ...]  # the patient of each episode
  params: Any  # (PatientParams, QuestParams), one row per episode
  key: jax.Array


def make_cohort(c, spec: str, field: str, episodes: int, seed: int) -> Cohort:
  names, patients, quest = problems.load_cohort(c, spec, field)
  idx = np.repeat(np.arange(len(names)), episodes)
  rows = jax.tree.map(lambda x: jnp.asarray(np.asarray(x)[idx]), (patients, quest))
  return Cohort(tuple(names[i] for i in idx), rows, jax.random.key(seed))


class Trace(NamedTuple):
  """(T, E) per-step values of a cohort's episodes, numpy."""
  bg: np.ndarray
  insulin: np.ndarray
  meal: np.ndarray
  reward: np.ndarray
  done: np.ndarray
  clipped: np.ndarray
  finite: np.ndarray


@functools.partial(jax.jit, static_argnums=0)
def _reset(dosing, params, keys):
  return jax.vmap(dosing.reset)(params, keys)


@functools.partial(jax.jit, static_argnums=0)
def _step(dosing, params, state, pump, keys, t):
  def step(p, s, a, k):
    return dosing.task.step(p[0], s, a, jax.random.fold_in(k, t))
  state, obs, reward, done, info = jax.vmap(step)(params, state, pump, keys)
  out = (info["bg"], info["insulin"], info["meal"], reward, done, info["clipped"],
         info["finite"])
  return state, obs, out


def closed_loop(dosing, cohort: Cohort, make_controller, num_steps: int,
                chunk: int = 256, key_index=None) -> Trace:
  """Every episode of `cohort` for `num_steps` steps, in batches of `chunk` episodes
  (one compiled shape for every cohort; the last batch padded by repeating its last
  episode). `make_controller(params, rows)` builds the controller of a batch.
  Episode i's meals and noise come from key `key_index[i]` (default i) of the
  cohort, whatever the chunking: equal indices, identical days."""
  num = len(cohort.env_names)
  key_index = np.arange(num) if key_index is None else np.asarray(key_index)
  k_reset, k_run = jax.random.split(cohort.key)
  reset_keys, run_keys = (jax.random.split(k, int(key_index.max()) + 1)[key_index]
                          for k in (k_reset, k_run))
  parts = []
  for start in range(0, num, chunk):
    rows = np.minimum(np.arange(start, start + chunk), num - 1)
    params = jax.tree.map(lambda x: x[rows], cohort.params)  # noqa: B023
    controller = make_controller(params, rows)
    state, obs = _reset(dosing, params, reset_keys[rows])
    ctrl, steps = controller.init(chunk), []
    for t in range(num_steps):
      ctrl, pump = controller.act(ctrl, obs, state)
      state, obs, out = _step(dosing, params, state, pump, run_keys[rows], t)
      steps.append(out)
    parts.append([np.stack(x)[:, :num - start] for x in zip(*jax.device_get(steps))])
  return Trace(*(np.concatenate(x, axis=1) for x in zip(*parts)))


def episode_metrics(trace: Trace, env_names) -> dict[str, np.ndarray]:
  """Per-episode metrics (E,) of a trace; raises on a non-finite state in an episode."""
  mask = np.asarray(rollout.first_episode_mask(jnp.asarray(trace.done)))
  bad = (~trace.finite.astype(bool)) & (mask > 0)
  if bad.any():
    t, e = np.argwhere(bad)[0]
    raise t1d.NonFiniteStateError(f"the glucose-insulin state became NaN/inf for "
                                  f"{env_names[e]} at step {t} of an evaluation episode")
  out = {k: np.asarray(v) for k, v in
         metrics.glycaemic_metrics(trace.bg.T, mask.T).items()}
  low = (trace.bg < SEVERE_BG) & (mask > 0)
  out["severe_hypo"] = low.any(0).astype(np.float64)
  out["pump_clipped"] = ((trace.clipped > 0) * mask).sum(0) / mask.sum(0)
  out["return"] = (trace.reward * mask).sum(0)
  return out


def summarize(per_episode) -> dict[str, dict[str, float]]:
  return metrics.summarize({k: per_episode[k] for k in REPORTED})


class T1DEvaluator(Evaluator):
  """A cohort under the learned policy and the baselines (cached: they do not learn)."""
  reports_loss = True

  def __init__(self, name, task, cohort: Cohort, num_steps: int, final_only: bool,
               pid_gains):
    self.name, self.task, self.cohort = name, task, cohort
    self.num_steps, self.final_only, self._pid_gains = num_steps, final_only, pid_gains
    self.dosing = problems.dosing(task.config)
    self._baselines = None

  def _controller(self, kind, predict_fn=None):
    st = self.dosing.task.env.sensor.sample_time
    if kind == "basal_bolus":
      return lambda params, rows: baselines.BasalBolus(params, st)
    if kind == "pid":
      return lambda params, rows: baselines.Pid(params, self._pid_gains(), st)
    space = self.task.problem.space
    return lambda params, rows: baselines.Learned(predict_fn, space, self.dosing, params)

  def _run(self, kind, predict_fn=None):
    return closed_loop(self.dosing, self.cohort, self._controller(kind, predict_fn),
                       self.num_steps, self.task.config.eval_chunk)

  def traces(self, predict_fn) -> dict[str, Trace]:
    if self._baselines is None:
      self._baselines = {k: self._run(k) for k in CONTROLLERS[1:]}
    return {"ppo": self._run("ppo", predict_fn), **self._baselines}

  def episodes(self, predict_fn) -> dict[str, dict[str, np.ndarray]]:
    return {k: episode_metrics(tr, self.cohort.env_names)
            for k, tr in self.traces(predict_fn).items()}

  def run(self, predict_fn):
    per = self.episodes(predict_fn)
    for name in REPORTED:
      yield name, float(np.nanmean(per["ppo"][name]))
    for kind in CONTROLLERS[1:]:
      for name in ("time_in_range", "risk_index"):
        yield f"{kind}_{name}", float(np.nanmean(per[kind][name]))


def tune_pid(c, seed: int):
  """The PID_GRID point with the lowest mean risk index on the training patients
  (`c.pid_tune_episodes` episodes each): every candidate in one batch."""
  candidates = baselines.pid_candidates()
  base = make_cohort(c, c.train_patients, "train_patients", c.pid_tune_episodes, seed)
  reps = len(candidates)
  params = jax.tree.map(lambda x: jnp.tile(x, (reps,) + (1,) * (x.ndim - 1)), base.params)
  cohort = Cohort(base.env_names * reps, params, base.key)
  gains = np.repeat(np.asarray(candidates, np.float32), len(base.env_names), axis=0)
  dosing = problems.dosing(c)
  st = dosing.task.env.sensor.sample_time
  make = lambda params, rows: baselines.Pid(params, tuple(gains[rows].T), st)  # noqa: E731
  # Every candidate runs the same episodes (meals, sensor noise).
  same_days = np.tile(np.arange(len(base.env_names)), reps)
  trace = closed_loop(dosing, cohort, make, problems.episode_steps(c, dosing.task.env),
                      c.eval_chunk, key_index=same_days)
  per = episode_metrics(trace, cohort.env_names)
  score = per["risk_index"].reshape(reps, -1).mean(1)
  best = tuple(float(g) for g in candidates[int(np.nanargmin(score))])
  logging.info("PID gains (kp, ki, kd per basal rate) tuned on %s: %s, risk index %.3f",
               c.train_patients, best, float(np.nanmin(score)))
  return best


class SepsisEvaluator(Evaluator):
  """Exact survival of the policy (its softmax, and greedy) and of the baselines."""
  name = "sepsis"
  reports_loss = True

  def __init__(self, mdp: sepsis.SepsisMDP):
    self.mdp = mdp
    self._baselines = None
    self._outcomes = jax.jit(sepsis_eval.episode_outcomes)

  def baselines(self) -> dict[str, float]:
    if self._baselines is None:
      a = self.mdp.expert.shape[1]
      _, vi = sepsis.value_iteration(self.mdp)
      pols = {"random": sepsis.uniform_policy(self.mdp),
              "expert": sepsis_eval.normalise_rows(self.mdp.expert),
              "value_iteration": jax.nn.one_hot(vi, a)}
      self._baselines = {k: float(self._outcomes(self.mdp, p).survival)
                         for k, p in pols.items()}
    return self._baselines

  def policies(self, predict_fn):
    """The network's (S, A) policy: it is fed every state index (SepsisEnv's
    `one_hot=False` observations)."""
    s = self.mdp.expert.shape[0]
    logits = jnp.asarray(predict_fn({"obs": np.arange(s, dtype=np.int32)})[0])
    return {"ppo": jax.nn.softmax(logits, -1),
            "ppo_greedy": jax.nn.one_hot(jnp.argmax(logits, -1), logits.shape[-1])}

  def run(self, predict_fn):
    for name, pol in self.policies(predict_fn).items():
      out = self._outcomes(self.mdp, pol)
      yield f"{name}_survival", float(out.survival)
      yield f"{name}_unfinished", float(out.unfinished)
    for name, value in self.baselines().items():
      yield f"{name}_survival", value


def make_evaluators(c, task):
  """val (training patients, new scenarios; periodic) and final-only held-out groups."""
  if task.problem.kind == "sepsis":
    return [SepsisEvaluator(task.problem.params)]
  gains = functools.cache(lambda: tune_pid(c, c.eval_seed + 2))
  steps = problems.episode_steps(c, problems.t1d_env(c))
  evals = [T1DEvaluator("val", task, make_cohort(c, c.train_patients, "train_patients",
                                                 c.val_episodes, c.eval_seed + 1),
                        steps, False, gains)]
  for group in (g.strip() for g in c.test_groups.split(";") if g.strip()):
    label, _, spec = group.partition("=")
    if not spec:
      label, spec = label.split("#")[0], label
    evals.append(T1DEvaluator(f"test_{label}", task,
                              make_cohort(c, spec, "test_groups", c.eval_episodes,
                                          c.eval_seed), steps, True, gains))
  return evals
