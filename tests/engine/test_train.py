import json
import os
import signal

import jax
import numpy as np
import pytest

from medjax.engine import checkpoint as checkpoint_lib
from medjax.engine import train
from tests.engine.toy_task import ToyTask, latest_state, toy_config


def _final_params(workdir, task, config):
  train.train_and_evaluate(config, workdir, task)
  return latest_state(workdir)


def test_writes_metrics_figures_and_checkpoints(tmp_path):
  config = toy_config(best_metric="val/mse", best_mode="min")
  results = train.train_and_evaluate(config, str(tmp_path), ToyTask())
  assert set(results) == {"val/mse", "val/loss"}
  # The engine's validation loss: the task's loss over the evaluator's one batch.
  assert results["val/loss"] == pytest.approx(results["val/mse"], rel=1e-5)
  summary = json.loads((tmp_path / "metrics.json").read_text())
  assert summary["step"] == 12 and summary["best_step"] in (4, 8, 12)
  assert results["val/mse"] == pytest.approx(summary["best"]["val/mse"])
  assert summary["best"]["val/mse"] <= summary["last"]["val/mse"] + 1e-6
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if "val/mse" in r] == [4, 8, 12]
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "tensorboard"))
  assert (tmp_path / "learning_curves.png").stat().st_size > 1000
  # The loss goes down on this easy problem.
  losses = [r["train/loss"] for r in rows if "train/loss" in r]
  assert losses[-1] < losses[0]


def test_kill_and_resume_matches_uninterrupted(tmp_path):
  config = toy_config()
  straight = _final_params(str(tmp_path / "a"), ToyTask(), config)

  reads = {"n": 0}
  def sigterm_once():
    reads["n"] += 1
    if reads["n"] == 8 * 5 + 1:  # while fetching the 6th batch
      signal.raise_signal(signal.SIGTERM)
  out = train.train_and_evaluate(config, str(tmp_path / "b"), ToyTask(on_element=sigterm_once))
  assert out == {"preempted_at_step": 6.0}
  resumed = _final_params(str(tmp_path / "b"), ToyTask(), config)
  assert int(resumed["step"]) == 12
  jax.tree.map(np.testing.assert_array_equal, straight, resumed)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  config = toy_config()
  # Labels turn NaN after 5 batches were read: steps 1-4 are good, step 5 is not.
  with pytest.raises(train.NonFiniteLossError, match=r"step [56].*step 4"):
    train.train_and_evaluate(config, str(tmp_path), ToyTask(nan_after=8 * 5))
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path), async_save=False)
  assert ckpt.latest.all_steps() == [4]
  ckpt.close()


def test_batch_size_must_fit_devices(tmp_path):
  with pytest.raises(ValueError, match="config.batch_size=6"):
    train.train_and_evaluate(toy_config(batch_size=6), str(tmp_path), ToyTask())


class _DivergingTask(ToyTask):
  """Reports divergence once a logged mean loss falls below a floor."""

  def __init__(self, floor, **kw):
    super().__init__(**kw)
    self.floor, self.seen = floor, []

  def divergence(self, metrics):
    self.seen.append(metrics["loss"])
    return f"loss {metrics['loss']:.3g} below {self.floor}" if metrics["loss"] < self.floor \
        else None


def test_task_divergence_stops_like_a_nan_and_keeps_the_last_good_checkpoint(tmp_path):
  config = toy_config()
  probe = _DivergingTask(floor=-1.0)  # never: learn the losses logged at each flush
  train.train_and_evaluate(config, str(tmp_path / "probe"), probe)
  floor = (probe.seen[1] + probe.seen[2]) / 2  # crossed at the third flush, not before
  task = _DivergingTask(floor=floor)
  with pytest.raises(train.NonFiniteLossError, match=r"steps \d+-\d+: loss .* below"):
    train.train_and_evaluate(config, str(tmp_path / "run"), task)
  assert len(task.seen) == 3
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path / "run"), async_save=False)
  steps = ckpt.latest.all_steps()
  ckpt.close()
  assert steps and max(steps) < 12  # the diverged state itself was not saved
