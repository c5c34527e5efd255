"""Splits: partitions of the right sizes; scaffold splits never share a scaffold."""

import numpy as np
import pytest

from medjax.molecule import splits

# 10 scaffolds (benzene, pyridine, cyclohexane, ...), several molecules each.
RINGS = ["c1ccccc1", "c1ccncc1", "C1CCCCC1", "C1CCNCC1", "c1ccoc1", "c1ccsc1",
         "C1CCC1", "c1ccc2ccccc2c1", "C1CCOC1", "c1cnccn1"]
SMILES = [f"{'C' * k}{ring}" if k else ring for i, ring in enumerate(RINGS)
          for k in range(1 + (i * 3) % 7)] + ["CCO", "CCCN", "CC(C)O"]  # acyclic: scaffold ''


def check_partition(split, n):
  joined = np.concatenate([split["train"], split["val"], split["test"]])
  np.testing.assert_array_equal(np.sort(joined), np.arange(n))


@pytest.mark.parametrize("seed,balanced", [(0, True), (1, True), (2, True), (0, False)])
def test_scaffold_split_keeps_each_scaffold_in_one_split(seed, balanced):
  split = splits.scaffold_split(SMILES, (0.6, 0.2, 0.2), seed, balanced)
  check_partition(split, len(SMILES))
  scaffolds = {k: {splits.scaffold(SMILES[i]) for i in v} for k, v in split.items()}
  assert not scaffolds["train"] & scaffolds["val"]
  assert not scaffolds["train"] & scaffolds["test"]
  assert not scaffolds["val"] & scaffolds["test"]
  assert len(split["train"]) <= int(0.6 * len(SMILES))


def test_sorted_scaffold_split_is_deterministic_and_fills_train_with_big_sets():
  a = splits.make_split("scaffold_sorted", SMILES, None, "binary", (0.6, 0.2, 0.2), seed=0)
  b = splits.make_split("scaffold_sorted", SMILES, None, "binary", (0.6, 0.2, 0.2), seed=5)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  sizes = {}
  for s in SMILES:
    sizes[splits.scaffold(s)] = sizes.get(splits.scaffold(s), 0) + 1
  biggest = max(sizes, key=sizes.get)
  assert all(splits.scaffold(SMILES[i]) != biggest for i in a["test"])
  mean_size = lambda ids: np.mean([sizes[splits.scaffold(SMILES[i])] for i in ids])
  assert mean_size(a["train"]) > mean_size(a["test"])


def test_scaffold_of_hand_checked_molecules():
  assert splits.scaffold("CCc1ccccc1") == "c1ccccc1"
  assert splits.scaffold("CC(=O)Oc1ccccc1C(=O)O") == "c1ccccc1"
  assert splits.scaffold("CCO") == ""


def test_scaffold_folds_keep_each_scaffold_in_one_fold():
  fold = splits.fold_ids("scaffold", 3, seed=0, smiles=SMILES)
  by_scaffold = {}
  for s, f in zip(SMILES, fold):
    by_scaffold.setdefault(splits.scaffold(s), set()).add(int(f))
  assert all(len(f) == 1 for f in by_scaffold.values())
  assert set(fold) == {0, 1, 2}


def test_random_split_sizes_and_seeds():
  a = splits.random_split(101, (0.8, 0.1, 0.1), seed=0)
  assert [len(a[k]) for k in ("train", "val", "test")] == [80, 10, 11]
  check_partition(a, 101)
  b = splits.random_split(101, (0.8, 0.1, 0.1), seed=1)
  assert not np.array_equal(a["test"], b["test"])
  np.testing.assert_array_equal(a["test"], splits.random_split(101, seed=0)["test"])


def test_stratified_split_keeps_class_balance():
  labels = np.array([1.0] * 30 + [0.0] * 170)[:, None]
  groups = splits.strata(labels, "binary")
  split = splits.stratified_split(groups, (0.8, 0.1, 0.1), seed=3)
  check_partition(split, 200)
  assert [labels[split[k]].sum() for k in ("train", "val", "test")] == [24, 3, 3]


def test_regression_strata_are_quantile_bins():
  y = np.arange(100, dtype=float)[:, None]
  groups = splits.strata(y, "regression", bins=4)
  np.testing.assert_array_equal(np.bincount(groups), [25, 25, 25, 25])


@pytest.mark.parametrize("kind", ["random", "stratified"])
def test_k_folds_rotate_test_and_val(kind):
  n = len(SMILES)
  targets = np.random.default_rng(0).integers(0, 2, (n, 1)).astype(float)
  tests = []
  for r in range(5):
    split = splits.make_split(kind, SMILES, targets, "binary", folds=5, fold=r)
    check_partition(split, n)
    np.testing.assert_array_equal(split["val"], splits.make_split(
        kind, SMILES, targets, "binary", folds=5, fold=(r + 1) % 5)["test"])
    tests.append(split["test"])
  np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(n))


def test_bad_fractions_are_an_error():
  with pytest.raises(ValueError):
    splits.random_split(10, (0.8, 0.3, 0.1))
