"""Running a task's evaluators: metrics, the evaluation loss, logs and metric rows.

Every evaluator also gets `<evaluator>/loss`: `task.loss` over the batches it
predicts on, weighted by their real examples (`sum(batch["_mask"])`), so each
task has a validation loss without computing one itself. Evaluators marked
`final_only` (test splits) run only once, after training.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import logging

from medjax.engine.errors import InputError
from medjax.engine.task import Task

class _LossOfBatches:
  """Wraps a predict function; accumulates `task.loss` of what it predicts on."""

  def __init__(self, task: Task, name: str, loss_fn, said: set[str]):
    self.task, self.name, self._loss_fn, self._said = task, name, loss_fn, said
    self.total = self.weight = 0.0

  def wrap(self, predict_fn):
    def predict(batch):
      outputs = predict_fn(batch)
      self._add(outputs, batch)
      return outputs
    return predict

  def _add(self, outputs, batch):
    if "_mask" not in batch:
      if self.name not in self._said:  # once per run
        self._said.add(self.name)
        logging.info("%s/loss is not reported: the %s evaluator of %s predicts on "
                     "batches without `_mask` (e.g. image windows without labels), "
                     "which the task's loss cannot score.", self.name, self.name,
                     type(self.task).__name__)
      return
    weight = float(np.sum(batch["_mask"]))
    if weight > 0:
      numeric = {k: v for k, v in batch.items() if np.asarray(v).dtype.kind in "biuf"}
      self.total += float(self._loss_fn(outputs, numeric)) * weight
      self.weight += weight


class Evaluations:
  """The evaluations of one run; the first one logs how long it took (it compiles)."""

  def __init__(self, task: Task, predict):
    self.task, self.predict = task, predict
    self._loss_fn = jax.jit(lambda outputs, batch: task.loss(outputs, batch)[0])
    self._first = True
    self._said = set()

  def final_only_names(self) -> set[str]:
    return {e.name for e in self.task.evaluators() if e.final_only}

  def check_best_metric(self, best_metric: str) -> None:
    owner = best_metric.split("/")[0]
    if best_metric and owner in self.final_only_names():
      raise InputError(
          f"config.best_metric={best_metric!r} is a metric of the {owner!r} evaluator, "
          "which runs only once, after training (final_only): choose the checkpoint by "
          "a validation metric")

  def run(self, state, final: bool | None = False) -> dict[str, float]:
    """{"<evaluator>/<metric>": value} of the periodic evaluators (`final`=False), the
    final-only ones (True) or all (None), with each evaluator's `loss`."""
    if self._first:
      logging.info("First evaluation: compiling the predict step...")
      start = time.perf_counter()
    results = {}
    for evaluator in self.task.evaluators():
      if final is not None and evaluator.final_only != final:
        continue
      loss = _LossOfBatches(self.task, evaluator.name, self._loss_fn, self._said)
      evaluator.step = None if state is None else int(state.step)
      predict = lambda batch: self.predict(state, batch)  # noqa: E731
      for name, value in evaluator.run(predict if evaluator.reports_loss
                                       else loss.wrap(predict)):
        results[f"{evaluator.name}/{name}"] = float(value)
      if loss.weight > 0:
        results.setdefault(f"{evaluator.name}/loss", loss.total / loss.weight)
    if self._first and results:
      logging.info("First evaluation compiled and ran in %.1f s.", time.perf_counter() - start)
      self._first = False
    return results


def fmt(results: dict[str, float]) -> str:
  return ", ".join(f"{k}={v:.4f}" for k, v in sorted(results.items()))
