"""config.privacy checks before training, and a private run through the engine."""

import json
import os
import shutil

import numpy as np
import pytest

from medjax.engine import config as config_lib
from medjax.engine.errors import InputError
from medjax.privacy.dp import training
from tests.privacy.dp.tiny import TinyTask


def _config(**privacy):
  c = config_lib.base_config()
  c.batch_size, c.total_steps = 8, 20
  c.privacy.update(dict(enabled=True, target_epsilon=3.0, delta=1e-3), **privacy)
  return c


def test_batch_norm_is_refused_naming_the_layer_and_the_fix():
  with pytest.raises(InputError, match=r"BatchNorm layers \(BatchNorm_0\).*norm=group"):
    training.PrivateTraining(_config(), TinyTask(norm="batch"))


def test_unet_batch_norm_is_refused():
  from medjax.segmentation.unet import UNet  # pylint: disable=import-outside-toplevel
  task = TinyTask()
  task.model = UNet(spatial_dims=2, num_classes=1, features=(4, 8), norm="batch")
  task.model_inputs = lambda b: {"image": np.zeros((1, 8, 8, 1), np.float32)}
  with pytest.raises(InputError, match="norm=group"):
    training.check_per_example_model(task)
  task.model = UNet(spatial_dims=2, num_classes=1, features=(4, 8), norm="group")
  training.check_per_example_model(task)  # no error


@pytest.mark.parametrize("privacy, message", [
    (dict(target_epsilon=0.0), r"config.privacy.target_epsilon=0.0: set a target epsilon > 0"),
    (dict(target_epsilon=-1.0), r"config.privacy.target_epsilon=-1.0"),
    (dict(delta=1 / 64), r"config.privacy.delta=0.015625 must be in \(0, 1/N\)"),
    (dict(delta=0.0), r"config.privacy.delta=0 must be in"),
    (dict(target_epsilon=1e-3, delta=1e-6), r"target_epsilon=0.001: unreachable"),
    (dict(noise_multiplier=0.3), r"total_steps=20 would spend epsilon=.* > "
                                 r"config.privacy.target_epsilon=3.0"),
    (dict(clip_norm=0.0), r"config.privacy.clip_norm=0.0 must be > 0"),
    (dict(capacity=10, microbatches=4), r"config.privacy.capacity=10 must be a multiple of 4"),
    (dict(capacity=8), r"config.privacy.capacity=8 truncates Poisson batches too often"),
    (dict(accountant="moments"), r"config.privacy.accountant='moments'"),
])
def test_bad_settings_are_refused_naming_the_field(privacy, message):
  with pytest.raises(InputError, match=message):
    training.PrivateTraining(_config(**privacy), TinyTask(n=64))


def test_batch_size_above_the_data_is_refused():
  c = _config()
  c.batch_size = 100
  with pytest.raises(InputError, match="config.batch_size=100"):
    training.PrivateTraining(c, TinyTask(n=64))


def test_calibration_meets_the_target_and_the_ledger_pins_the_mechanism(tmp_path):
  dp = training.PrivateTraining(_config(), TinyTask(n=64), str(tmp_path))
  assert dp.total_epsilon <= 3.0 and dp.epsilon(0) == 0.0
  assert dp.epsilon(10) < dp.epsilon(20) == dp.total_epsilon
  assert dp.capacity >= 8 and dp.scalars(20) == {"train/dp_epsilon": dp.total_epsilon}
  with open(tmp_path / training.LEDGER_FILE) as f:
    assert json.load(f)["noise_multiplier"] == dp.noise_multiplier
  training.PrivateTraining(_config(), TinyTask(n=64), str(tmp_path))  # same: resumes
  ledger = json.loads((tmp_path / training.LEDGER_FILE).read_text())
  ledger["noise_multiplier"] *= 1 + 1e-6  # recalibrated within tolerance: kept as trained
  (tmp_path / training.LEDGER_FILE).write_text(json.dumps(ledger))
  again = training.PrivateTraining(_config(), TinyTask(n=64), str(tmp_path))
  assert again.noise_multiplier == ledger["noise_multiplier"]
  longer = _config()
  longer.total_steps = 40  # would recalibrate sigma: refused
  with pytest.raises(InputError, match="another DP mechanism.*noise_multiplier"):
    training.PrivateTraining(longer, TinyTask(n=64), str(tmp_path))


@pytest.mark.slow  # ~5 s: a whole (tiny) private training run and its resume
def test_private_run_reports_epsilon_and_resumes(tmp_path):
  from medjax.engine import train  # pylint: disable=import-outside-toplevel
  c = _config()
  c.log_every, c.eval_every, c.checkpoint_every = 5, 0, 10
  c.async_checkpoints = False
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(c, workdir, TinyTask(n=64))
  with open(os.path.join(workdir, "metrics.json")) as f:
    summary = json.load(f)["privacy"]
  assert summary["steps"] == 20 and 0 < summary["epsilon"] <= 3.0
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  spent = [r["train/dp_epsilon"] for r in rows if "train/dp_epsilon" in r]
  assert spent == sorted(spent) and spent[-1] == pytest.approx(summary["epsilon"])
  # Resume from step 10 (as after a preemption): same batches, noise and epsilon.
  final = train.train_and_evaluate(c, workdir, TinyTask(n=64))
  shutil.rmtree(os.path.join(workdir, "checkpoints", "20"))
  resumed = train.train_and_evaluate(c, workdir, TinyTask(n=64))
  assert resumed == pytest.approx(final, rel=1e-5)
  with open(os.path.join(workdir, "metrics.json")) as f:
    assert json.load(f)["privacy"]["epsilon"] == pytest.approx(summary["epsilon"])
  c.total_steps = 30  # sigma was calibrated for 20 steps: refused, not recalibrated
  with pytest.raises(InputError, match="another DP mechanism"):
    train.train_and_evaluate(c, workdir, TinyTask(n=64))


def test_a_task_whose_train_source_is_a_property_is_refused_clearly():
  class PropertySource(TinyTask):
    train_source = property(lambda self: [])  # as SegmentationTask's (no padded batches)

  with pytest.raises(InputError, match="PropertySource has no train_source"):
    training.PrivateTraining(_config(), PropertySource(n=64))
