"""One-step runs of every preset through the shared engine, on tiny on-disk data sets,
and evaluation of a trained checkpoint on another set directory."""

import json
import os

import numpy as np
import pytest

from experiments.configs import ehr as ehr_configs
from medjax.ehr import crossval, external, physionet
from medjax.ehr import task as task_lib
from medjax.engine import train
from tests.ehr import fake_data


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory):
  root = tmp_path_factory.mktemp("ehr_data")
  mimic = root / "mimic"
  mimic.mkdir()
  return {"a": fake_data.write_physionet_set(root, "a", 40, seed=0),
          "b": fake_data.write_physionet_set(root, "b", 12, seed=1),
          "mimic": fake_data.write_mimic_tables(mimic), "cache": str(root / "cache")}


def _smoke_config(preset, dirs):
  config = ehr_configs.get_config(preset)
  config.total_steps, config.batch_size = 1, 8
  config.eval_every, config.checkpoint_every, config.log_every = 0, 1, 1
  config.async_checkpoints = False
  config.task.update(dict(hidden=8, embed_dim=8, synthetic_stays=40, cache_dir=dirs["cache"],
                          set_dir=dirs["a"], mimic_dir=dirs["mimic"], pad_multiple=8,
                          layers=1))
  return config


def _run(config, workdir):
  task = task_lib.EhrTask(config.task, batch_size=config.batch_size, workdir=workdir)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json())
  return task, train.train_and_evaluate(config, workdir, task)


@pytest.fixture(scope="module")
def grud_run(data_dirs, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("grud_run")
  task, results = _run(_smoke_config("p12_grud", data_dirs), str(workdir))
  return workdir, task, results


_SLOW_PRESETS = ("p12_gru", "p12_transformer", "p12_mtan", "mimic_demo_retain")  # 12-21 s each: -m slow


@pytest.mark.parametrize("preset", [  # eicu: same code path
    pytest.param(p, marks=pytest.mark.slow) if p in _SLOW_PRESETS else p
    for p in ehr_configs.PRESETS[:-1]])
def test_one_step_of_each_preset(preset, data_dirs, grud_run, tmp_path):
  if preset == "p12_grud":
    tmp_path, task, results = grud_run
  else:
    task, results = _run(_smoke_config(preset, data_dirs), str(tmp_path))
  assert results["test/count"] == len(task.splits["test"])
  assert 0.0 <= results["test/brier"] <= 1.0
  files = os.listdir(tmp_path)
  assert {"calibration_test.png", "calibration_val.png", "calibration.json",
          "metrics.json"} <= set(files)
  fitted = json.loads((tmp_path / "calibration.json").read_text())
  if preset in ("quick", "p12_grud"):  # both outcomes in their validation split
    assert fitted["fitted_on"] == "val"
  assert not fitted["fitted_on"] or fitted["nll_after"] <= fitted["nll_before"]
  assert results["test/temperature"] == fitted["temperature"]
  (explained,) = [f for f in files if f.startswith("explain_") and f.endswith(".png")]
  record = json.loads((tmp_path / explained.replace(".png", ".json")).read_text())
  assert record["label"] in (0, 1)


def test_evaluate_checkpoint_on_another_set(data_dirs, grud_run, tmp_path):
  run_dir, _, _ = grud_run
  workdir, out = str(run_dir), str(tmp_path / "on_b")
  prep = json.loads((run_dir / task_lib.PREPROCESSING_FILE).read_text())
  metrics = external.evaluate_on_set(workdir, data_dirs["b"], out, patient=200003)
  assert metrics["test/count"] == 12
  # Set b is normalised with set a's training statistics, not refitted.
  set_b = physionet.load_set(data_dirs["b"])
  ext = external.external_task(external.load_run_config(workdir), workdir, data_dirs["b"])
  assert ext.prep == prep
  hr = set_b.variables.index("HR")
  raw = set_b.events(0)[2][set_b.events(0)[1] == hr]
  mean, std = prep["normaliser"]["mean"][hr], prep["normaliser"]["std"][hr]
  first_bin = ext.examples[0]["values"][:, hr][ext.examples[0]["mask"][:, hr] > 0][0]
  times = set_b.events(0)[0][set_b.events(0)[1] == hr]
  expected = (raw[times < 1.0].mean() - mean) / std
  assert first_bin == pytest.approx(expected, rel=1e-4)
  assert os.path.exists(os.path.join(out, "calibration_test.png"))
  # The temperature fitted on set a's validation split is applied to set b, not refitted.
  fitted = json.loads((run_dir / "calibration.json").read_text())
  assert metrics["test/temperature"] == fitted["temperature"]
  assert json.loads(open(os.path.join(out, "calibration.json")).read()) == fitted
  assert os.path.exists(os.path.join(out, "explain_200003.png"))


def _recording_train(seen, base):
  """A fold trainer that records its folds and scores fold f at base + 0.1 f."""
  def fake_train(cfg, workdir):
    os.makedirs(workdir, exist_ok=True)
    seen.append(cfg.task.fold)
    return {"test/auroc": base + 0.1 * cfg.task.fold}
  return fake_train


def test_cv_summary_mean_and_sd(tmp_path):
  config = _smoke_config("quick", {"cache": "", "a": "", "mimic": ""})
  seen = []
  fake_train = _recording_train(seen, 0.7)
  summary = crossval.run_folds(config, str(tmp_path), 3, fake_train)
  assert seen == [0, 1, 2]
  assert summary["test/auroc"]["mean"] == pytest.approx(0.8)
  assert summary["test/auroc"]["sd"] == pytest.approx(np.std([0.7, 0.8, 0.9], ddof=1))
  crossval.run_folds(config, str(tmp_path), 3, fake_train)  # finished folds are reused
  assert seen == [0, 1, 2]


def test_cv_stops_on_a_preempted_fold(tmp_path):
  config = _smoke_config("quick", {"cache": "", "a": "", "mimic": ""})
  calls = []

  def preempted_at_fold_1(cfg, workdir):
    os.makedirs(workdir, exist_ok=True)
    calls.append(cfg.task.fold)
    return {"preempted_at_step": 3.0} if cfg.task.fold == 1 else {"test/auroc": 0.5}

  with pytest.raises(crossval.Preempted, match="fold 1"):
    crossval.run_folds(config, str(tmp_path), 3, preempted_at_fold_1)
  assert calls == [0, 1]
  assert not (tmp_path / "fold_1" / "cv_result.json").exists()


def test_cv_only_some_folds_then_the_rest(tmp_path):
  config = _smoke_config("quick", {"cache": "", "a": "", "mimic": ""})
  seen = []
  fake_train = _recording_train(seen, 0.6)
  summary = crossval.run_folds(config, str(tmp_path), 4, fake_train, only=[3, 1])
  assert seen == [3, 1]
  assert summary["test/auroc"]["values"] == pytest.approx([0.7, 0.9])  # fold order
  summary = crossval.run_folds(config, str(tmp_path), 4, fake_train)
  assert seen == [3, 1, 0, 2]
  assert summary["test/auroc"]["mean"] == pytest.approx(np.mean([0.6, 0.7, 0.8, 0.9]))
  with open(tmp_path / "cv_summary.json") as f:
    assert json.load(f)["folds_done"] == [0, 1, 2, 3]
  with pytest.raises(ValueError, match=r"\[4\]"):
    crossval.run_folds(config, str(tmp_path), 4, fake_train, only=[4])
