"""The one training program shared by every task.

Sections: set-up (mesh, optimiser, state) -> resume -> loop (step, log, evaluate,
checkpoint) -> final evaluation and report. Resume order: the newest checkpoint in
`workdir/checkpoints` that can be read (state, RNG and data position; unreadable
ones are moved to `workdir/checkpoints_corrupt`), else a fresh start. Evaluators
marked `final_only` (test splits) run once, at the end, on the selected checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from medjax.engine import checkpoint as checkpoint_lib
from medjax.engine import evaluation
from medjax.engine import mesh as mesh_lib
from medjax.engine import plots
from medjax.engine import steps
from medjax.engine import writers
from medjax.engine.task import Task


EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by SIGTERM after saving; rerun to resume


def exit_if_preempted(results: dict) -> None:
  """For experiment mains: a run stopped by SIGTERM exits with EXIT_PREEMPTED, so
  that schedulers (SLURM requeue, Kubernetes pod failure policies) see it unfinished."""
  if "preempted_at_step" in results:
    sys.exit(EXIT_PREEMPTED)


class NonFiniteLossError(RuntimeError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


# With several processes, how often they agree on stopping (one tiny all-gather):
# a SIGTERM grace period (30 s on Kubernetes) must cover this many steps + a save.
_PREEMPTION_SYNC_STEPS = 10


class _Preemption:
  """Turns SIGTERM into a flag the loop checks after each step."""

  def __init__(self):
    self.requested = False
    self._previous = None
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread: no signal handling
      pass

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM received: saving a checkpoint, then exiting.")
    self.requested = True

  def stop(self, step: int) -> bool:
    """Whether to stop after `step`; with several processes, all agree (every
    _PREEMPTION_SYNC_STEPS steps), since the final save is collective."""
    if jax.process_count() == 1:
      return self.requested
    if step % _PREEMPTION_SYNC_STEPS:
      return False
    flags = multihost_utils.process_allgather(np.int32(self.requested))
    return bool(np.any(flags))

  def restore(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _check_config(config, mesh):
  divisor = mesh_lib.batch_divisor(mesh)
  if config.batch_size % divisor:
    raise ValueError(f"config.batch_size={config.batch_size} must be a multiple of the "
                     f"{divisor} devices on the batch axes (config.mesh)")
  if config.total_steps <= 0:
    raise ValueError(f"config.total_steps={config.total_steps} must be positive")


def first_nonfinite(host) -> int | None:
  """Index of the first host-side step metrics with a non-finite loss, or None."""
  return next((i for i, m in enumerate(host) if not np.isfinite(m["loss"])), None)


def mean_metrics(host) -> dict[str, float]:
  """Each metric's mean over the host-side step metrics `host`."""
  return {k: float(np.mean([m[k] for m in host])) for k in host[-1]} if host else {}


def _flush(pending, step, ckpt, divergence=None):
  """Host-syncs the step metrics since the last flush; stops on a non-finite loss,
  or when `divergence(mean metrics)` (`Task.divergence`) returns a message."""
  host = jax.device_get(pending)
  pending.clear()
  offset = first_nonfinite(host)
  if offset is not None:
    ckpt.wait()
    bad = step - len(host) + offset + 1
    raise NonFiniteLossError(
        f"loss is {host[offset]['loss']} at step {bad}; stopped. The last good checkpoint "
        f"(step {ckpt.latest_step()}) is kept in {ckpt.latest.directory}.")
  means = mean_metrics(host)
  problem = divergence(means) if divergence and host else None
  if problem:
    ckpt.wait()
    raise NonFiniteLossError(
        f"steps {step - len(host) + 1}-{step}: {problem}; stopped. The last good "
        f"checkpoint (step {ckpt.latest_step()}) is kept in {ckpt.latest.directory}.")
  return {f"train/{k}": v for k, v in means.items()}


def train_and_evaluate(config, workdir: str, task: Task) -> dict[str, float]:
  """Trains `task` as `config` says, in `workdir`; returns the final metrics."""
  if "://" in workdir:
    raise ValueError(f"--workdir={workdir}: URLs are not supported; give a path every "
                     "process sees (a shared disk, or a bucket mounted with gcsfuse)")
  mesh = mesh_lib.make_mesh(config.mesh)
  _check_config(config, mesh)
  os.makedirs(workdir, exist_ok=True)
  dp = _private_training(config, task, workdir, mesh)
  logging.info("Building %s and its sharded state on a %s mesh...",
               type(task.model).__name__, dict(mesh.shape))
  state, train_step, abstract = steps.build(task, config, mesh,
                                            grad_rule=dp.grad_rule() if dp else None)
  ckpt = checkpoint_lib.Checkpointer(workdir, config.keep_checkpoints, config.best_metric,
                                     config.best_mode, config.async_checkpoints)
  data = iter(task.train_dataset(config.batch_size // jax.process_count(), config.seed,
                                 jax.process_index(), jax.process_count())) if dp is None \
      else dp.train_iterator(config.seed, jax.process_index(), jax.process_count())
  restored = ckpt.restore_latest(abstract)
  if restored is not None:
    state, data_state = restored
    if data_state is not None:
      data.set_state(data_state)
    logging.info("Resumed from %s at step %d", ckpt.latest.directory, int(state.step))

  evals = evaluation.Evaluations(task, steps.make_predict_fn(task, mesh, config.compute_dtype))
  if ckpt.best is not None:
    evals.check_best_metric(config.best_metric)
  start = int(state.step)
  writer = writers.MetricWriter(workdir, resume_step=start,
                                redo_evaluations=start >= config.total_steps)
  preemption = _Preemption()
  try:
    state, steps_per_sec = _loop(config, mesh, state, data, train_step, evals, ckpt,
                                 writer, preemption, dp)
    if int(state.step) < config.total_steps:
      logging.warning("Stopped at step %d on SIGTERM; rerun the same command to resume.",
                      int(state.step))
      return {"preempted_at_step": float(state.step)}
    return _finish(config, workdir, task, state, abstract, evals, ckpt, writer,
                   steps_per_sec, dp)
  finally:
    preemption.restore()
    ckpt.wait()
    ckpt.close()
    writer.close()


def _private_training(config, task, workdir, mesh):
  """`config.privacy` checked and set up (DP-SGD), or None when it is off."""
  if not config.get("privacy") or not config.privacy.enabled:
    return None
  from medjax.privacy.dp import training  # pylint: disable=import-outside-toplevel
  return training.PrivateTraining(config, task, workdir, mesh_lib.batch_divisor(mesh))


def _loop(config, mesh, state, data, train_step, evals, ckpt, writer, preemption, dp=None):
  """Steps until `config.total_steps` or SIGTERM; logs, evaluates and checkpoints."""
  step = first = int(state.step)
  progress = writers.Progress(config.total_steps, step, config.batch_size)
  pending = []
  stop = False
  if step < config.total_steps:
    logging.info("Step %d: compiling the train step (first step)...", step + 1)
    started = time.perf_counter()
  while step < config.total_steps and not stop:
    state, metrics = train_step(state, mesh_lib.shard_batch(next(data), mesh))
    pending.append(metrics)
    step += 1
    if step == first + 1:
      jax.block_until_ready(metrics)
      logging.info("First step compiled and ran in %.1f s.", time.perf_counter() - started)
      progress.start(step)
    stop = preemption.stop(step)
    last = step == config.total_steps or stop
    is_eval = bool(config.eval_every) and step % config.eval_every == 0 and not last
    is_ckpt = last or bool(config.checkpoint_every) and step % config.checkpoint_every == 0
    is_log = bool(config.log_every) and step % config.log_every == 0
    if is_log or last or is_eval or is_ckpt:
      # Before any save: never checkpoint a NaN or a diverged state.
      scalars = _flush(pending, step, ckpt, evals.task.divergence)
      scalars.update(dp.scalars(step) if dp else {})
      progress.log(step, scalars)
      if np.isfinite(progress.steps_per_sec):
        scalars["train/steps_per_sec"] = progress.steps_per_sec
      writer.write_scalars(step, scalars)
    if is_eval:
      _evaluate_and_log(evals, state, step, writer, ckpt)
    if is_ckpt:
      ckpt.save(step, state, data.get_state(), force=True)
  return state, progress.steps_per_sec


def _evaluate_and_log(evals, state, step, writer, ckpt):
  """The periodic evaluators at `step`: logged, written, offered as the best checkpoint."""
  results = evals.run(state)
  writer.write_scalars(step, results)
  logging.info("step %d eval: %s", step, evaluation.fmt(results))
  ckpt.save_best(step, state, results)
  return results


def _finish(config, workdir, task, state, abstract, evals, ckpt, writer, steps_per_sec,
            dp=None):
  """Final evaluation (at the best checkpoint if one is kept), final-only evaluators
  (on that same checkpoint), report and figures."""
  step = int(state.step)
  results = _evaluate_and_log(evals, state, step, writer, ckpt)
  summary = {"step": step, "train_steps_per_sec": steps_per_sec,
             "train_examples_per_sec": steps_per_sec * config.batch_size, "last": results}
  if dp is not None:
    summary["privacy"] = dp.summary(step)
  ckpt.wait()
  best = ckpt.restore_best(abstract) if ckpt.best is not None else None
  selected = step
  if best is not None:
    state, selected = best, ckpt.best_step()
    results = evals.run(state)
    logging.info("best checkpoint (step %d): %s", selected, evaluation.fmt(results))
  elif ckpt.best is not None:
    logging.warning("No best checkpoint could be restored: the final-only evaluators "
                    "and the report use the last step (%d).", step)
  final = evals.run(state, final=True)
  if final:
    writer.write_scalars(step, final)
    logging.info("final-only evaluation (checkpoint of step %d): %s", selected,
                 evaluation.fmt(final))
    summary["final_only_step"] = selected
  results = {**results, **final}
  summary.update({"best_step": selected, "best": results} if best is not None else
                 {"last": results})
  # The report predicts (a collective step), so every process makes it; only
  # process 0 keeps its files.
  with tempfile.TemporaryDirectory() as scratch:
    out = workdir if jax.process_index() == 0 else scratch
    summary["report"] = task.report(lambda batch: evals.predict(state, batch), out)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "metrics.json"), "w", encoding="utf-8") as f:
      json.dump(summary, f, indent=2, default=float)
    plots.learning_curves(writer.jsonl_path, os.path.join(workdir, "learning_curves.png"))
  return results
