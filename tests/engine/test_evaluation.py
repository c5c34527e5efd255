"""Final-only evaluators, the engine's evaluation loss, first-step progress lines."""

import json
import logging

import numpy as np
import pytest

from medjax.engine import checkpoint as checkpoint_lib
from medjax.engine import evaluation
from medjax.engine import mesh as mesh_lib
from medjax.engine import steps
from medjax.engine import train
from medjax.engine.errors import InputError
from medjax.engine.task import Evaluator
from tests.engine.toy_task import ToyTask, toy_config


class _Recorder(Evaluator):
  """A test split: records every call and the predictions it saw."""

  name, final_only = "test", True

  def __init__(self, x, y):
    self.x, self.y, self.seen = x, y, []

  def run(self, predict_fn):
    pred = predict_fn({"x": self.x, "y": self.y, "_mask": np.ones(len(self.x), np.float32)})
    self.seen.append(np.asarray(pred))
    yield "mse", float(np.mean((pred - self.y) ** 2))


@pytest.mark.parametrize("best", [True, False])
def test_a_final_only_evaluator_runs_once_at_the_end_on_the_selected_checkpoint(
    tmp_path, caplog, best):
  base = ToyTask()
  recorder = _Recorder(base.x[16:32], base.y[16:32])
  task = ToyTask(extra_evaluators=[recorder])
  # best_mode=max keeps the *worst* validation step, so that it differs from the last.
  config = toy_config(best_metric="val/mse" if best else "", best_mode="max")
  with caplog.at_level(logging.INFO):
    results = train.train_and_evaluate(config, str(tmp_path), task)
  assert len(recorder.seen) == 1
  summary = json.loads((tmp_path / "metrics.json").read_text())
  selected = summary["best_step"] if best else 12
  assert summary["final_only_step"] == selected and (selected < 12) == best
  # It saw the predictions of the selected checkpoint's parameters.
  mesh = mesh_lib.make_mesh(config.mesh)
  _, _, abstract = steps.build(task, config, mesh)
  state = checkpoint_lib.restore_state(str(tmp_path), abstract, prefer_best=best)
  expected = steps.make_predict_fn(task, mesh)(state, {"x": recorder.x})
  np.testing.assert_allclose(recorder.seen[0], expected, rtol=1e-6)
  assert results["test/mse"] == pytest.approx(np.mean((expected - recorder.y) ** 2), rel=1e-5)
  final = summary["best" if best else "last"]
  assert final["test/mse"] == results["test/mse"] and "test/loss" in final
  if best:
    assert "test/mse" not in summary["last"]
  # Written once, at the end; never in the periodic evaluations.
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if "test/mse" in r] == [12]
  assert [r["step"] for r in rows if "val/mse" in r] == [4, 8, 12]
  messages = [r.getMessage() for r in caplog.records]
  assert sum("compiling the train step (first step)" in m for m in messages) == 1
  assert sum(m.startswith("First step compiled and ran in") for m in messages) == 1
  assert sum(m.startswith("First evaluation compiled and ran in") for m in messages) == 1
  assert not any("test/mse" in m for m in messages if m.startswith("step 4 eval"))


def test_a_final_only_best_metric_is_refused_before_training(tmp_path):
  task = ToyTask(extra_evaluators=[_Recorder(np.zeros((2, 4), np.float32), np.zeros(2))])
  with pytest.raises(InputError, match="'test/mse'.*final_only"):
    train.train_and_evaluate(toy_config(best_metric="test/mse"), str(tmp_path), task)
  assert not (tmp_path / "metrics.jsonl").exists()


class _TwoBatches(Evaluator):
  """Predicts on two padded batches (4 and 2 real rows of 5); yields nothing itself."""

  name = "val"

  def __init__(self, x, y, mask_key="_mask"):
    self.x, self.y, self.mask_key = x, y, mask_key

  def run(self, predict_fn):
    for rows, real in ((slice(0, 5), 4), (slice(5, 10), 2)):
      batch = {"x": self.x[rows], "y": self.y[rows]}
      if self.mask_key:
        batch[self.mask_key] = (np.arange(5) < real).astype(np.float32)
      predict_fn(batch)
    yield "batches", 2.0


def _fake_predict(state, batch):
  del state
  return np.asarray(batch["x"][:, 0])  # "predictions": the first feature


def test_the_evaluation_loss_weighs_each_real_example_once():
  task = ToyTask()
  x, y = task.x[:10], task.y[:10]
  task.evaluators = lambda: [_TwoBatches(x, y)]
  results = evaluation.Evaluations(task, _fake_predict).run(state=None)
  real = np.r_[0:4, 5:7]  # padding rows (mask 0) do not count
  assert results["val/loss"] == pytest.approx(np.mean((x[real, 0] - y[real]) ** 2), rel=1e-5)
  assert results["val/batches"] == 2.0


def test_batches_without_mask_get_no_loss_and_say_why_once(caplog):
  task = ToyTask()
  task.evaluators = lambda: [_TwoBatches(task.x[:10], task.y[:10], mask_key=None)]
  evals = evaluation.Evaluations(task, _fake_predict)
  with caplog.at_level(logging.INFO):
    first, second = evals.run(state=None), evals.run(state=None)
  assert first == second == {"val/batches": 2.0}
  reasons = [r.getMessage() for r in caplog.records if "val/loss is not reported" in r.getMessage()]
  assert len(reasons) == 1 and "without `_mask`" in reasons[0]
