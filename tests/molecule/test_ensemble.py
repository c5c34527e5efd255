"""Ensembles: the mean prediction is scored, beside the members' mean score."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from experiments import molecule as molecule_main
from experiments.configs import molecule as molecule_configs
from medjax.molecule import ensemble, predict
from medjax.molecule import metrics as metrics_lib
from medjax.molecule import task as task_lib
from tests.molecule import fake_moleculenet


def test_combine_scores_the_mean_and_averages_member_scores():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 2, (30, 2)).astype(float)
  y[0, 0], y[1, 0], y[3, 1] = 0, 1, np.nan
  members = [rng.random((30, 2)) for _ in range(3)]
  ens, single = ensemble.combine(members,
                                 lambda p: metrics_lib.binary(y, p, ("a", "b")))
  mean = (members[0] + members[1] + members[2]) / 3
  ok = ~np.isnan(y[:, 1])
  assert ens["roc_auc/a"] == pytest.approx(skm.roc_auc_score(y[:, 0], mean[:, 0]))
  assert ens["roc_auc/b"] == pytest.approx(skm.roc_auc_score(y[ok, 1], mean[ok, 1]))
  each = [skm.roc_auc_score(y[ok, 1], m[ok, 1]) for m in members]
  assert single["roc_auc/b"] == pytest.approx(np.mean(each))
  assert ens["roc_auc/b"] != pytest.approx(single["roc_auc/b"])  # not the same number


def test_member_seeds_and_predict_finds_members(tmp_path):
  config = molecule_configs.get_config("bbbp")
  assert [ensemble.member_config(config, k).seed for k in range(3)] == [0, 1000, 2000]
  for d in ("run0/member0", "run0/member1", "run1/member0", "run1/other"):
    os.makedirs(tmp_path / d)
    (tmp_path / d / task_lib.METADATA_FILE).write_text("{}")
  assert predict.run_dirs([str(tmp_path)]) == [
      str(tmp_path / d) for d in ("run0/member0", "run0/member1", "run1/member0")]


@pytest.mark.slow  # two 1-step trainings and their reloads: ~30 s on a shared CPU
def test_ensemble_run_averages_its_members(tmp_path, molecule_cache):
  data_dir = fake_moleculenet.write_all(str(tmp_path / "data"), n=40)
  config = molecule_configs.get_config("bbbp,smoke")
  config.async_checkpoints = False
  config.task.update(dict(data_dir=data_dir, cache_dir=molecule_cache, ensemble_size=2,
                          split_fractions=(0.5, 0.25, 0.25)))
  summary = molecule_main.train(config, str(tmp_path / "run"))
  test = pd.read_csv(tmp_path / "run" / "test_predictions.csv")
  members = [pd.read_csv(tmp_path / "run" / f"member{k}" / "test_predictions.csv")
             for k in range(2)]
  assert (members[0].p_np_pred != members[1].p_np_pred).any()  # different seeds
  mean = (members[0].p_np_pred + members[1].p_np_pred) / 2
  np.testing.assert_allclose(test.p_np_pred, mean, rtol=1e-5)
  run = summary["runs"][0]
  assert run["test/roc_auc"] == pytest.approx(skm.roc_auc_score(test.p_np, mean))
  singles = [skm.roc_auc_score(m.p_np, m.p_np_pred) for m in members]
  assert run["members_mean/test/roc_auc"] == pytest.approx(np.mean(singles))
  saved = json.loads((tmp_path / "run" / "ensemble.json").read_text())
  assert saved["metrics"]["test/roc_auc"] == pytest.approx(run["test/roc_auc"])
