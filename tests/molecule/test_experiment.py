"""One-step runs of every preset through the engine; repeats; the predict command."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from experiments import molecule as molecule_main
from experiments.configs import molecule as molecule_configs
from medjax.engine import train
from medjax.engine.errors import InputError
from medjax.molecule import benchmark, predict
from medjax.molecule import task as task_lib
from tests.molecule import fake_moleculenet


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return fake_moleculenet.write_all(str(tmp_path_factory.mktemp("moleculenet")), n=40)


def smoke_config(preset, data_dir, cache):
  config = molecule_configs.get_config(preset + ",smoke")
  config.async_checkpoints = False
  config.task.update(dict(data_dir=data_dir, cache_dir=cache))
  if preset != "quick":
    config.task.split_fractions = (0.5, 0.25, 0.25)
  return config


@pytest.mark.parametrize("preset", ["quick"] + [  # the others: -m slow (9-11 s each)
    pytest.param(p, marks=pytest.mark.slow) for p in ("lipo", "bbbp", "tox21")])
def test_one_step_smoke_run_of_every_preset(preset, data_dir, molecule_cache, tmp_path):
  config = smoke_config(preset, data_dir, molecule_cache)
  if preset == "quick":  # 5k molecules: evaluate a slice only
    config.task.split_fractions = (0.96, 0.02, 0.02)
  task = task_lib.MoleculeTask(config.task, config.batch_size)
  task_lib.resolve_best_metric(config, task)
  results = train.train_and_evaluate(config, str(tmp_path), task)
  key = "val/rmse" if task.task_type == "regression" else "val/roc_auc"
  assert np.isfinite(results[key])
  figure = "test_pred_vs_true.png" if task.task_type == "regression" else "test_roc.png"
  assert (tmp_path / figure).exists() and (tmp_path / "test_predictions.csv").exists()
  invalid = pd.read_csv(tmp_path / "invalid_smiles.csv", keep_default_na=False)
  if preset != "quick":
    # Data row 1 is line 3 of the file (the header is line 1).
    assert invalid.to_dict("list") == {"line": [3], "row": [1],
                                       "smiles": [fake_moleculenet.BAD]}


@pytest.mark.slow  # end-to-end: run with -m slow (the default run stays under 10 min)
def test_repeats_then_ensemble_prediction(data_dir, molecule_cache, tmp_path):
  config = smoke_config("esol", data_dir, molecule_cache)
  config.task.repeats = 2
  molecule_main.train(config, str(tmp_path))
  summary = json.loads((tmp_path / "summary.json").read_text())
  rmse = [run["test/rmse"] for run in summary["runs"]]
  assert summary["mean_sd"]["test/rmse"] == pytest.approx([np.mean(rmse), np.std(rmse, ddof=1)])
  # Predict: one run reproduces its own test predictions; both give mean and spread.
  run0 = pd.read_csv(tmp_path / "run0" / "test_predictions.csv")
  new = pd.DataFrame({"smiles": [run0.smiles[0], "C1CC((", run0.smiles[1]]})
  new.to_csv(tmp_path / "new.csv", index=False)
  single = predict.predict_csv([str(tmp_path / "run0")], str(tmp_path / "new.csv"),
                               str(tmp_path / "single.csv"))
  target = "measured log solubility in mols per litre"
  assert single["valid"].tolist() == [1, 0, 1] and np.isnan(single[target][1])
  np.testing.assert_allclose(single[target][[0, 2]], run0[target + "_pred"][:2], rtol=1e-5)
  ensemble = predict.predict_csv([str(tmp_path)], str(tmp_path / "new.csv"),
                                 str(tmp_path / "ensemble.csv"))
  assert os.path.exists(tmp_path / "ensemble.csv")
  assert ensemble["valid"].tolist() == [1, 0, 1] and np.isnan(ensemble[target + "_std"][1])
  # Two models: sample sd = |p0 - p1| / sqrt(2) = sqrt(2) |mean - p0|.
  mean, sd, p0 = (ensemble[target][[0, 2]], ensemble[target + "_std"][[0, 2]],
                  single[target][[0, 2]])
  assert (sd > 0).all()
  np.testing.assert_allclose(sd, np.sqrt(2) * np.abs(mean - p0), rtol=1e-5)


def test_benchmark_counts_real_molecules(data_dir, molecule_cache):
  config = smoke_config("lipo", data_dir, molecule_cache)
  task = task_lib.MoleculeTask(config.task, config.batch_size)
  feats = benchmark.featurization(task.data.smiles[:5] + ["C1CC(("])
  assert feats["featurize/molecules"] == 6 and feats["featurize/invalid"] == 1
  train_stats = benchmark.training(config, task, steps=2, warmup=1)
  assert 0 < train_stats["train/molecules_per_step"] <= config.batch_size
  assert train_stats["train/molecules_per_sec"] > 0


def any_csv_config(csv, cache, **overrides):
  """The README's "Any CSV" command (quick preset, task_type=binary), made tiny."""
  config = molecule_configs.get_config("quick,smoke")
  config.async_checkpoints = False
  config.task.update(dict(dataset="csv", csv_path=csv, smiles_column="smiles",
                          target_columns="y1,y2", task_type="binary", cache_dir=cache,
                          split_fractions=(0.5, 0.25, 0.25)))
  config.update(overrides)
  return config


def test_a_bad_best_metric_stops_before_training(molecule_cache, tmp_path):
  csv = fake_moleculenet.write_two_task_csv(tmp_path / "my.csv")
  config = any_csv_config(csv, molecule_cache, best_metric="val/rmse")
  with pytest.raises(InputError, match="val/roc_auc"):
    molecule_main.train(config, str(tmp_path / "run"))
  assert not (tmp_path / "run" / "checkpoints").exists()
