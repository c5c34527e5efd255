"""The molecule task: masked losses, invalid SMILES, datasets and their cache."""

from pathlib import Path

import numpy as np
import pytest

from experiments.configs import molecule as molecule_configs
from medjax.engine import evaluation
from medjax.engine.errors import InputError
from medjax.molecule import datasets
from medjax.molecule import task as task_lib
from tests.molecule import fake_moleculenet


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return fake_moleculenet.write_all(str(tmp_path_factory.mktemp("moleculenet")))


def make_task(data_dir, tmp_path, dataset="tox21", **overrides):
  cfg = molecule_configs.task_config()
  cfg.update(dict(dataset=dataset, data_dir=data_dir, cache_dir=str(tmp_path / "cache"),
                  hidden=8, head_hidden=8, depth=2, split_fractions=(0.6, 0.2, 0.2)))
  cfg.update(overrides)
  return task_lib.MoleculeTask(cfg, batch_size=8)


def test_masked_multitask_loss_ignores_missing_labels_and_padding(data_dir, tmp_path):
  task = make_task(data_dir, tmp_path)
  rng = np.random.default_rng(0)
  shape = (2, 3, 12)
  outputs = rng.normal(size=shape).astype(np.float32)
  targets = rng.integers(0, 2, shape).astype(np.float32)
  target_mask = (rng.random(shape) < 0.6).astype(np.float32)
  graph_mask = np.array([[1, 1, 0], [1, 0, 0]], np.float32)
  batch = {"targets": targets, "target_mask": target_mask, "_mask": graph_mask}
  loss, _ = task.loss(outputs, batch)
  w = target_mask * graph_mask[..., None]
  p = 1 / (1 + np.exp(-outputs))
  bce = -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
  assert float(loss) == pytest.approx((bce * w).sum() / w.sum(), rel=1e-5)
  # Whatever sits under a missing label or a padded molecule changes nothing.
  scrambled = dict(batch, targets=np.where(w > 0, targets, 1 - targets))
  assert float(task.loss(outputs, scrambled)[0]) == pytest.approx(float(loss), rel=1e-6)
  assert float(task.loss(np.where(w > 0, outputs, 50.0), batch)[0]) == pytest.approx(
      float(loss), rel=1e-6)


def test_regression_targets_are_standardised_on_train(data_dir, tmp_path):
  task = make_task(data_dir, tmp_path, dataset="esol")
  train = task.split["train"]
  np.testing.assert_allclose(task.normalised_targets[train].mean(), 0, atol=1e-6)
  np.testing.assert_allclose(task.normalised_targets[train].std(), 1, atol=1e-5)
  raw = task.data.targets[:3]
  np.testing.assert_allclose(task.postprocess(task.normalised_targets[:3]), raw, atol=1e-5)
  # Squared error in standardised units.
  out = np.zeros((1, 2, 1), np.float32)
  batch = {"targets": np.array([[[1.0], [3.0]]], np.float32), "target_mask": np.ones((1, 2, 1)),
           "_mask": np.ones((1, 2))}
  assert float(task.loss(out, batch)[0]) == pytest.approx(5.0)


def test_multiclass_loss_is_softmax_cross_entropy(tmp_path):
  path = tmp_path / "classes.csv"
  path.write_text("smiles,kind\nCCO,0\nc1ccccc1,2\nCCN,1\nCCC,2\nCCCl,0\n")
  cfg = molecule_configs.task_config()
  cfg.update(dict(dataset="csv", csv_path=str(path), target_columns="kind",
                  task_type="multiclass", cache_dir=str(tmp_path / "cache"), hidden=8))
  task = task_lib.MoleculeTask(cfg, batch_size=8)
  assert task.num_classes == 3
  logits = np.array([[[0.5, 1.0, -1.0]]], np.float32)
  batch = {"targets": np.array([[[2.0]]], np.float32), "target_mask": np.ones((1, 1, 1)),
           "_mask": np.ones((1, 1))}
  want = -np.log(np.exp(-1.0) / np.exp(logits).sum())
  assert float(task.loss(logits, batch)[0]) == pytest.approx(want, rel=1e-5)


def test_invalid_smiles_are_skipped_counted_and_listed(tmp_path):
  path = tmp_path / "mols.csv"
  path.write_text("id,smiles,y\na,CCO,1.0\nb,not_a_smiles,2.0\nc,c1ccccc1,3.0\n"
                  "d,,4.0\ne,C1CC,5.0\nf,CCN,6.0\n")
  spec = datasets.DatasetSpec("mols.csv", target_columns=("y",))
  data = datasets.load(spec, path, cache_dir=tmp_path / "cache")
  assert data.invalid == [(1, "not_a_smiles"), (3, ""), (4, "C1CC")]
  assert data.smiles == ["CCO", "c1ccccc1", "CCN"]
  np.testing.assert_array_equal(data.rows, [0, 2, 5])
  np.testing.assert_array_equal(data.targets[:, 0], [1.0, 3.0, 6.0])
  assert len(data.store) == 3


def test_featurisation_is_cached_by_file_content(tmp_path):
  path = tmp_path / "mols.csv"
  path.write_text("smiles,y\nCCO,1\nCCN,2\n")
  spec = datasets.DatasetSpec("mols.csv", target_columns=("y",))
  first = datasets.load(spec, path, cache_dir=tmp_path / "cache")
  second = datasets.load(spec, path, cache_dir=tmp_path / "cache")
  assert not first.from_cache and second.from_cache
  np.testing.assert_array_equal(first.store.atom_codes, second.store.atom_codes)
  path.write_text("smiles,y\nCCO,1\nc1ccccc1,2\n")
  third = datasets.load(spec, path, cache_dir=tmp_path / "cache")
  assert not third.from_cache and third.store.num_atoms.tolist() == [3, 6]


def test_moleculenet_formats(data_dir, tmp_path):
  for name, tasks, kind in [("esol", 1, "regression"), ("lipo", 1, "regression"),
                            ("bbbp", 1, "binary"), ("tox21", 12, "binary")]:
    spec, path = datasets.resolve(name, data_dir)
    data = datasets.load(spec, path, cache_dir=tmp_path / "cache")
    assert data.targets.shape == (19, tasks) and data.task_type == kind
    assert data.invalid == [(1, fake_moleculenet.BAD)]
  assert np.isnan(data.targets).any()  # tox21 keeps missing labels as NaN
  with pytest.raises(InputError, match="HIV.csv"):
    datasets.resolve("hiv", data_dir)


SHARED = (datasets.shared_data_dir() or Path("/nonexistent")) / "moleculenet"


@pytest.mark.skipif(not (SHARED / "BBBP.csv").exists(), reason="shared MoleculeNet absent")
def test_real_bbbp_and_esol(tmp_path):
  bbbp = datasets.load(*datasets.resolve("bbbp"), cache_dir=tmp_path / "cache")
  assert len(bbbp) + len(bbbp.invalid) == 2050 and len(bbbp.invalid) == 11
  esol = datasets.load(*datasets.resolve("esol"), cache_dir=tmp_path / "cache")
  assert len(esol) == 1128 and not esol.invalid
  assert esol.targets.mean() == pytest.approx(-3.05, abs=0.01)


def test_embedded_tpsa_file_reads_smiles_with_triple_bonds(molecule_cache):
  data = datasets.load(*datasets.resolve("tpsa"), cache_dir=molecule_cache)
  assert len(data) + len(data.invalid) == 4999
  assert any("#" in s for s in data.smiles)  # '#' is a bond, not a comment
  assert data.targets[0, 0] == pytest.approx(34.14)
  assert data.lines[0] == 2  # after the '#' comment on line 1


def csv_task(tmp_path, task_type, rows):
  path = tmp_path / f"{task_type}.csv"
  path.write_text("smiles,y1,y2\n" + "".join(f"{s},{a},{b}\n" for s, a, b in rows))
  cfg = molecule_configs.task_config()
  cfg.update(dict(dataset="csv", csv_path=str(path), target_columns="y1,y2",
                  task_type=task_type, cache_dir=str(tmp_path / "cache"), hidden=8,
                  head_hidden=8, depth=2, split_fractions=(0.5, 0.3, 0.2)))
  return task_lib.MoleculeTask(cfg, batch_size=4)


ROWS = [(s, i % 2, (i // 2) % 2) for i, s in enumerate(
    ["CCO", "c1ccccc1", "CCN", "CCC", "CCCl", "CCBr", "c1ccncc1", "C1CCCCC1", "CC(=O)O",
     "OCCO"])]


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("best")
  return {kind: csv_task(tmp, kind, ROWS) for kind in ("regression", "binary", "multiclass")}


@pytest.mark.parametrize("kind", ["regression", "binary", "multiclass"])
def test_metric_names_are_what_every_evaluation_reports(tasks, kind):
  task = tasks[kind]
  out_dim = len(task.task_names) * max(task.num_classes, 1)
  predict = lambda state, b: np.zeros(b["_mask"].shape + (out_dim,), np.float32)
  reported = evaluation.Evaluations(task, predict).run(None, final=False)  # as the engine
  assert sorted(task.metric_names()) == sorted(reported)


@pytest.mark.parametrize("kind,metric,mode", [
    ("regression", "val/rmse", "min"), ("binary", "val/roc_auc", "max"),
    ("multiclass", "val/roc_auc", "max")])
def test_the_default_best_metric_follows_the_task_type(tasks, kind, metric, mode):
  # The README's "Any CSV" example: the quick preset (regression) with task_type=binary.
  config = molecule_configs.get_config("quick")
  task_lib.resolve_best_metric(config, tasks[kind])
  assert (config.best_metric, config.best_mode) == (metric, mode)
  assert config.best_metric in tasks[kind].metric_names()


@pytest.mark.parametrize("metric,mode,want_mode", [
    ("val/pr_auc", "auto", "max"), ("val/roc_auc/y2", "auto", "max"),
    ("val/loss", "auto", "min"), ("val/pr_auc", "min", "min")])
def test_an_explicit_best_metric_wins(tasks, metric, mode, want_mode):
  config = molecule_configs.get_config("quick")
  config.best_metric, config.best_mode = metric, mode
  task_lib.resolve_best_metric(config, tasks["binary"])
  assert (config.best_metric, config.best_mode) == (metric, want_mode)


def test_an_explicit_error_metric_is_minimised(tasks):
  config = molecule_configs.get_config("bbbp")
  config.best_metric = "val/mae"
  task_lib.resolve_best_metric(config, tasks["regression"])
  assert config.best_mode == "min"


def test_a_best_metric_the_task_does_not_report_lists_the_valid_names(tasks):
  config = molecule_configs.get_config("quick")
  config.best_metric = "val/rmse"
  with pytest.raises(InputError) as e:
    task_lib.resolve_best_metric(config, tasks["binary"])
  message = str(e.value)
  assert "--config.best_metric='val/rmse'" in message and "binary" in message
  for name in tasks["binary"].metric_names():
    assert name in message
  config.best_metric, config.best_mode = "val/roc_auc", "largest"
  with pytest.raises(InputError, match="best_mode='largest'"):
    task_lib.resolve_best_metric(config, tasks["binary"])


def test_class_balance_weights_positives_by_negatives_over_positives(tmp_path):
  path = tmp_path / "rare.csv"
  # Every molecule in train (fractions 1, 0, 0): y1 has 1 positive of 4, y2 2 of 4.
  path.write_text("smiles,y1,y2\nCCO,1,1\nCCC,0,1\nCCN,0,0\nCCCl,0,\nCCCC,,0\n")
  cfg = molecule_configs.task_config()
  cfg.update(dict(dataset="csv", csv_path=str(path), task_type="binary", hidden=8,
                  cache_dir=str(tmp_path / "cache"), class_balance=True,
                  split_fractions=(1.0, 0.0, 0.0)))
  task = task_lib.MoleculeTask(cfg, batch_size=8)
  np.testing.assert_allclose(task.positive_weight, [3.0, 1.0])
  out = np.array([[[0.3, -0.2], [1.0, 0.5]]], np.float32)
  targets = np.array([[[1.0, 0.0], [0.0, 1.0]]], np.float32)
  batch = {"targets": targets, "target_mask": np.ones((1, 2, 2)), "_mask": np.ones((1, 2))}
  bce = -(targets * np.log(1 / (1 + np.exp(-out)))
          + (1 - targets) * np.log(1 - 1 / (1 + np.exp(-out))))
  w = np.where(targets > 0.5, [3.0, 1.0], 1.0)
  want = (bce * w).sum() / 4  # the mean over the 4 labels, as without balance
  assert float(task.loss(out, batch)[0]) == pytest.approx(want, rel=1e-5)


def test_a_subset_is_split_and_stays_fixed_across_split_seeds(data_dir, tmp_path):
  full = make_task(data_dir, tmp_path)
  n = len(full.data)
  tasks = [make_task(data_dir, tmp_path, subset=n // 2, split_seed=s) for s in (0, 1)]
  chosen = [np.sort(np.concatenate(list(t.split.values()))) for t in tasks]
  np.testing.assert_array_equal(chosen[0], chosen[1])  # same molecules, other split
  assert len(chosen[0]) == n // 2 and len(np.unique(chosen[0])) == n // 2
  assert not np.array_equal(tasks[0].split["train"], tasks[1].split["train"])
  assert len(tasks[0].split["train"]) == int(0.6 * (n // 2))
  with pytest.raises(InputError, match="subset"):
    make_task(data_dir, tmp_path, subset=n + 1)
