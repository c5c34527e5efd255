"""Resuming past damaged checkpoints: moved aside, the newest good one used, results
identical to an uninterrupted run, metrics.jsonl without replayed duplicates."""

import glob
import json
import logging
import os
import shutil
import struct

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from tensorboardX.proto import event_pb2

from medjax.engine import checkpoint as checkpoint_lib
from medjax.engine import mesh as mesh_lib
from medjax.engine import steps
from medjax.engine import train
from medjax.engine.errors import InputError
from tests.engine.toy_task import ToyTask, toy_config

CONFIG = dict(best_metric="val/mse", best_mode="min")  # 12 steps, checkpoints every 4


def _saved_state(workdir, sub="checkpoints", step=12):
  """A checkpoint's state as plain arrays (restored without a target)."""
  with ocp.CheckpointManager(os.path.join(workdir, sub)) as manager:
    args = ocp.args.Composite(state=ocp.args.StandardRestore())
    return jax.device_get(manager.restore(step, args=args)["state"])


def _rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    rows = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if k != "train/steps_per_sec"} for r in rows]


def _damage(state_dir, how):
  if how == "truncate_data_file":
    path = max(glob.glob(os.path.join(state_dir, "d", "*")), key=os.path.getsize)
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
  else:
    os.remove(os.path.join(state_dir, "manifest.ocdbt"))


def _events(tb_dir):
  """(file, Event) of every TensorBoard event file, in file-name order."""
  for path in sorted(glob.glob(os.path.join(tb_dir, "events.out.tfevents.*"))):
    with open(path, "rb") as f:
      data, pos = f.read(), 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      yield path, event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 12 + length + 4


def _messages(caplog, text):
  return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """An uninterrupted run: its workdir, final state and metric rows (never modified)."""
  workdir = str(tmp_path_factory.mktemp("finished") / "run")
  train.train_and_evaluate(toy_config(**CONFIG), workdir, ToyTask())
  return workdir, _saved_state(workdir), _rows(workdir)


def _copy(finished, tmp_path):
  shutil.copytree(finished[0], tmp_path / "run")
  return str(tmp_path / "run")


@pytest.mark.parametrize("how", ["truncate_data_file", "delete_manifest"])
def test_a_corrupt_latest_checkpoint_is_moved_aside_and_the_run_resumes(
    finished, tmp_path, caplog, how):
  workdir = _copy(finished, tmp_path)
  _damage(os.path.join(workdir, "checkpoints", "12", "state"), how)
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(toy_config(**CONFIG), workdir, ToyTask())
  (error,) = _messages(caplog, "cannot be restored")
  assert "step 12" in error and os.path.join("checkpoints_corrupt", "12-0") in error
  assert _messages(caplog, "Resumed from") and "at step 8" in _messages(caplog, "Resumed")[0]
  moved = os.path.join(workdir, "checkpoints_corrupt", "12-0", "state")
  assert os.path.isdir(moved)  # moved, not deleted
  assert os.path.exists(os.path.join(moved, "manifest.ocdbt")) == (how != "delete_manifest")
  # Steps 9-12 ran again and ended exactly where the uninterrupted run did.
  jax.tree.map(np.testing.assert_array_equal, finished[1], _saved_state(workdir))
  # metrics.jsonl holds each step once, with the uninterrupted run's values.
  assert _rows(workdir) == finished[2]
  # TensorBoard hides the first run's events after step 8 (purge_step=9).
  starts = [(path, e.step) for path, e in _events(os.path.join(workdir, "tensorboard"))
            if e.HasField("session_log") and e.session_log.status == e.session_log.START]
  assert [step for _, step in starts][-1] == 9


def test_with_no_readable_checkpoint_the_run_starts_afresh(finished, tmp_path, caplog):
  workdir = _copy(finished, tmp_path)
  for step in (4, 8, 12):
    _damage(os.path.join(workdir, "checkpoints", str(step), "state"), "delete_manifest")
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(toy_config(**CONFIG), workdir, ToyTask())
  assert len(_messages(caplog, "cannot be restored")) == 3
  assert _messages(caplog, "training starts from scratch")
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints_corrupt"))) == [
      "12-0", "4-0", "8-0"]
  jax.tree.map(np.testing.assert_array_equal, finished[1], _saved_state(workdir))
  assert _rows(workdir) == finished[2]


def test_a_checkpoint_of_another_model_is_an_input_error(finished, tmp_path):
  workdir = _copy(finished, tmp_path)
  with pytest.raises(InputError, match=r"another model.*Dense_0\.kernel: \(4, 16\) saved, "
                                       r"\(5, 16\) now"):
    train.train_and_evaluate(toy_config(**CONFIG), workdir, ToyTask(dim=5))
  assert not os.path.exists(os.path.join(workdir, "checkpoints_corrupt"))


def test_a_corrupt_best_checkpoint_falls_back_to_the_last_step(finished, tmp_path, caplog):
  workdir = _copy(finished, tmp_path)
  (best_step,) = os.listdir(os.path.join(workdir, "best"))
  _damage(os.path.join(workdir, "best", best_step, "state"), "delete_manifest")
  with caplog.at_level(logging.INFO):  # a rerun of a finished run: evaluation only
    results = train.train_and_evaluate(toy_config(**CONFIG), workdir, ToyTask())
  assert _messages(caplog, "cannot be restored") and _messages(caplog, "use the last step")
  assert os.path.isdir(os.path.join(workdir, "checkpoints_corrupt", f"best-{best_step}-0"))
  with open(os.path.join(workdir, "metrics.json"), encoding="utf-8") as f:
    summary = json.load(f)
  assert "best" not in summary and results == summary["last"]
  # The final evaluation ran again; its rows were replaced, not repeated.
  assert _rows(workdir) == finished[2]


def test_restore_state_skips_unreadable_checkpoints_then_names_the_workdir(
    finished, tmp_path, caplog):
  workdir = _copy(finished, tmp_path)
  task, config = ToyTask(), toy_config(**CONFIG)
  _, _, abstract = steps.build(task, config, mesh_lib.make_mesh(config.mesh))
  (best_step,) = os.listdir(os.path.join(workdir, "best"))
  _damage(os.path.join(workdir, "best", best_step, "state"), "truncate_data_file")
  with caplog.at_level(logging.WARNING):
    state = checkpoint_lib.restore_state(workdir, abstract)
  assert _messages(caplog, os.path.join("best", best_step)) and _messages(caplog, "instead")
  jax.tree.map(np.testing.assert_array_equal, finished[1]["params"],
               jax.device_get(state.params))  # the latest step, 12
  assert os.path.isdir(os.path.join(workdir, "best", best_step))  # predicting moves nothing
  for step in (4, 8, 12):
    _damage(os.path.join(workdir, "checkpoints", str(step), "state"), "delete_manifest")
  with pytest.raises(InputError, match=f"no checkpoint under {workdir} can be restored"):
    checkpoint_lib.restore_state(workdir, abstract)
