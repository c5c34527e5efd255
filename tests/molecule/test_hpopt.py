"""--mode=hpopt: Optuna trials of the experiment's training, resumable."""

import json
import os

import numpy as np
import pytest

from experiments import molecule as molecule_main
from experiments.configs import molecule as molecule_configs
from medjax.engine import train as train_lib
from medjax.engine.errors import InputError
from medjax.molecule import hpopt
from tests.molecule import fake_moleculenet

optuna = pytest.importorskip("optuna")  # the [hpopt] extra (also in [test])

TINY = {"task.depth": ("int", 1, 2, 1), "task.hidden": ("int", 8, 16, 8),
        "task.dropout": ("float", 0.0, 0.2, 0.1),
        "optimizer.learning_rate": ("log", 1e-4, 1e-2, None)}


def test_apply_sets_linked_fields_and_flags_round_trip():
  config = molecule_configs.get_config("bbbp")
  params = {"task.hidden": 600, "task.dropout": 0.15, "optimizer.learning_rate": 3e-4}
  c = hpopt.apply(config, params)
  assert (c.task.hidden, c.task.head_hidden, c.task.dropout) == (600, 600, 0.15)
  assert c.optimizer.learning_rate == 3e-4 and config.task.hidden == 300  # a copy
  assert hpopt.as_flags(params) == [
      "--config.task.hidden=600", "--config.task.head_hidden=600",
      "--config.task.dropout=0.15", "--config.optimizer.learning_rate=0.0003"]


def test_suggestions_stay_in_the_space():
  trial = optuna.trial.FixedTrial({"task.depth": 2, "task.hidden": 16,
                                   "task.dropout": 0.1, "optimizer.learning_rate": 1e-3})
  assert hpopt.suggest(trial, TINY)["task.hidden"] == 16
  study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
  for _ in range(5):
    p = hpopt.suggest(study.ask(), hpopt.SPACE)
    assert 2 <= p["task.depth"] <= 6 and p["task.hidden"] % 100 == 0
    assert 1e-4 <= p["optimizer.learning_rate"] <= 1e-2 and 0 <= p["task.dropout"] <= 0.4


@pytest.mark.slow  # creating the SQLite schema alone takes 1-4 s: ~9 s on a shared CPU
def test_no_finished_trial_is_a_clear_error(tmp_path):
  def train(config, trial_dir):
    raise train_lib.NonFiniteLossError("loss is nan at step 1")

  config = molecule_configs.get_config("bbbp")
  with pytest.raises(InputError, match="no trial finished"):
    hpopt.search(config, str(tmp_path), 1, train, "val/roc_auc", "max", TINY)


def test_resume_finishes_the_count_and_reruns_an_interrupted_trial(tmp_path):
  calls = []

  def train(config, trial_dir):  # a stand-in objective: val/roc_auc = 1 - dropout
    calls.append(trial_dir)
    return {"mean_sd": {"val/roc_auc": (1.0 - config.task.dropout, 0.0)}}

  config = molecule_configs.get_config("bbbp")
  best = hpopt.search(config, str(tmp_path), 2, train, "val/roc_auc", "max", TINY)
  assert len(calls) == 2 and best["trials_finished"] == 2
  hpopt.search(config, str(tmp_path), 2, train, "val/roc_auc", "max", TINY)
  assert len(calls) == 2  # nothing left to run
  # A trial left running (a killed command) is failed and its parameters rerun.
  study = optuna.load_study(study_name=hpopt.STUDY,
                            storage=f"sqlite:///{tmp_path / hpopt.DB_FILE}")
  stale = study.ask()
  stale_params = hpopt.suggest(stale, TINY)
  stale.set_user_attr("dir", str(stale.number))
  best = hpopt.search(config, str(tmp_path), 3, train, "val/roc_auc", "max", TINY)
  assert len(calls) == 3 and best["trials_finished"] == 3
  # ... in the interrupted trial's own folder, so that it resumes from its checkpoints
  assert calls[-1] == str(tmp_path / "trials" / str(stale.number))
  study = optuna.load_study(study_name=hpopt.STUDY,
                            storage=f"sqlite:///{tmp_path / hpopt.DB_FILE}")
  assert study.trials[stale.number].state == optuna.trial.TrialState.FAIL
  assert study.trials[-1].params == stale_params
  values = [t.value for t in study.trials if t.value is not None]
  assert best["value"] == max(values) and best["trial"] == study.best_trial.number
  saved = json.loads((tmp_path / hpopt.BEST_FILE).read_text())
  assert saved["config"]["task"]["dropout"] == pytest.approx(1.0 - best["value"])


@pytest.mark.slow  # two 2-step trainings (~1 min on a shared CPU)
def test_hpopt_trains_trials_and_resumes(tmp_path, molecule_cache, monkeypatch):
  data_dir = fake_moleculenet.write_all(str(tmp_path / "data"), n=40)
  config = molecule_configs.get_config("bbbp,smoke")
  config.async_checkpoints, config.total_steps = False, 2
  config.task.update(dict(data_dir=data_dir, cache_dir=molecule_cache,
                          split_fractions=(0.5, 0.25, 0.25)))
  monkeypatch.setattr(hpopt, "SPACE", TINY)
  monkeypatch.setattr(molecule_main, "_HPOPT_TRIALS", type("F", (), {"value": 2}))
  workdir = str(tmp_path / "hp")
  best = molecule_main.hpopt(config, workdir)
  for n in (0, 1):  # each trial is a full training run with its own results
    metrics = json.loads(open(os.path.join(workdir, "trials", str(n), "metrics.json")).read())
    assert metrics["step"] == 2
  trial_values = [json.loads(open(os.path.join(workdir, "trials", str(n), "summary.json"))
                             .read())["mean_sd"]["val/roc_auc"][0] for n in (0, 1)]
  assert best["value"] == pytest.approx(np.max(trial_values))
  mtime = os.path.getmtime(os.path.join(workdir, "trials", "0", "metrics.json"))
  again = molecule_main.hpopt(config, workdir)  # resumed: nothing rerun
  assert again["trial"] == best["trial"] and not os.path.exists(
      os.path.join(workdir, "trials", "2"))
  assert os.path.getmtime(os.path.join(workdir, "trials", "0", "metrics.json")) == mtime
