"""experiments/bench/chemprop_same_split.py: the split it hands Chemprop is the run's own."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from experiments.bench import chemprop_same_split as bench
from experiments.configs import molecule as molecule_configs
from medjax.engine.errors import InputError
from medjax.molecule import task as task_lib
from tests.molecule import fake_moleculenet


@pytest.fixture(name="run_dir")
def fixture_run_dir(tmp_path):
  """A molecule run's config.json and split.csv (the files the bench reads)."""
  data_dir = fake_moleculenet.write_all(str(tmp_path / "moleculenet"))
  config = molecule_configs.get_config("tox21")
  config.task.update(dict(data_dir=data_dir, cache_dir=str(tmp_path / "cache"), hidden=8,
                          head_hidden=8, depth=2, split_fractions=(0.6, 0.2, 0.2),
                          subset=15, split_seed=3))
  run = tmp_path / "run"
  os.makedirs(run)
  (run / "config.json").write_text(config.to_json())
  task_lib.MoleculeTask(config.task, batch_size=8).write_run_files(str(run))
  return run


def test_the_chemprop_input_is_the_runs_split_with_its_labels(run_dir, tmp_path):
  task = bench.run_task(str(run_dir))
  path = tmp_path / "data.csv"
  targets = bench.write_chemprop_input(task, str(path))
  frame = pd.read_csv(path)
  assert targets == [f"t{j}" for j in range(12)]
  assert len(frame) == 15
  for name in ("train", "val", "test"):
    part = frame[frame["split"] == name]
    ids = task.split[name]
    assert list(part["smiles"]) == [task.data.smiles[i] for i in ids]
    np.testing.assert_array_equal(part[targets].to_numpy(), task.data.targets[ids])


def test_a_split_that_the_config_does_not_rebuild_is_refused(run_dir):
  split = pd.read_csv(run_dir / "split.csv")
  split.loc[split["split"] == "val", "split"] = "test"
  split.to_csv(run_dir / "split.csv", index=False)
  with pytest.raises(InputError, match="val split differs"):
    bench.run_task(str(run_dir))


def test_commands_train_on_the_split_column_and_predict_the_test_file():
  args = {"cli": "chemprop", "extra": "--epochs 3", "task_type": "binary"}
  train, predict = bench.chemprop_commands(args, "d.csv", "t.csv", ["t0", "t1"], "out")
  assert train[:2] == ["chemprop", "train"] and train[-2:] == ["--epochs", "3"]
  assert train[train.index("--splits-column") + 1] == "split"
  assert train[train.index("-t") + 1] == "classification"
  assert train[train.index("--target-columns") + 1:][:2] == ["t0", "t1"]
  assert predict[predict.index("--model-paths") + 1] == "out"
  assert predict[predict.index("-o") + 1] == os.path.join("out", "test_predictions.csv")


def test_medjax_scores_are_the_task_metrics_of_its_predictions(run_dir):
  task = bench.run_task(str(run_dir))
  ids = task.split["test"]
  rng = np.random.default_rng(0)
  preds = rng.random((len(ids), 12))
  frame = pd.DataFrame({f"{n}_pred": preds[:, j] for j, n in enumerate(task.task_names)})
  frame.to_csv(run_dir / "test_predictions.csv", index=False)
  got = bench.medjax_scores(task, str(run_dir))
  want = task.score(ids, preds)
  assert got["test/roc_auc"] == pytest.approx(want["roc_auc"], nan_ok=True)


def test_summary_table_mean_and_sd():
  rows = [{"medjax": {"test/roc_auc": a}, "chemprop": {"test/roc_auc": b}}
          for a, b in ((0.8, 0.7), (0.9, 0.75))]
  table = bench.summary_table(rows, "roc_auc")
  assert f"| medjax | 0.8500 +- {np.std([0.8, 0.9], ddof=1):.4f} | 0.8000, 0.9000 |" in table
  assert "| chemprop | 0.7250 +- 0.0354 |" in table
  assert json.dumps(rows)  # rows are what summary.json stores
