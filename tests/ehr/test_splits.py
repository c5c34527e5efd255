"""Stratified k-fold and random splits."""

import numpy as np
import pytest

from medjax.ehr import splits


def test_folds_partition_and_stratify():
  labels = np.r_[np.ones(50), np.zeros(303)].astype(int)
  folds = splits.stratified_folds(labels, 5, seed=0)
  together = np.concatenate(folds)
  assert sorted(together.tolist()) == list(range(len(labels)))
  for f in folds:
    assert 70 <= len(f) <= 71
    assert labels[f].sum() == 10
  assert not np.array_equal(folds[0], splits.stratified_folds(labels, 5, seed=1)[0])


@pytest.mark.parametrize("scheme", ["kfold", "random"])
def test_train_val_test_disjoint(scheme):
  labels = (np.arange(200) % 7 == 0).astype(int)
  s = splits.make_splits(labels, scheme=scheme, fold=2, val_fraction=0.1, seed=3)
  parts = [set(s[k].tolist()) for k in ("train", "val", "test")]
  assert sum(map(len, parts)) == 200 and set.union(*parts) == set(range(200))
  assert len(s["test"]) == 40
  assert labels[s["test"]].sum() in (5, 6)  # 29 positives, a fifth of them


def test_groups_stay_on_one_side():
  labels = np.array([0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0])
  groups = np.array([0, 0, 1, 1, 2, 3, 4, 4, 5, 6, 7, 8])
  for fold in range(3):
    s = splits.make_splits(labels, num_folds=3, fold=fold, val_fraction=0.2, seed=0,
                           groups=groups)
    sides = [set(groups[s[k]].tolist()) for k in ("train", "val", "test")]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
