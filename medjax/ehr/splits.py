"""Stratified train / validation / test splits: k-fold CV and repeated random splits.

With `groups` (e.g. patient ids when a patient has several admissions), whole groups are
assigned to one side, stratified by the group's label (1 if any of its samples is 1).
"""

from __future__ import annotations

import numpy as np


def _group_view(labels, groups):
  labels = np.asarray(labels)
  if groups is None:
    groups = np.arange(len(labels))
  uniq, inverse = np.unique(np.asarray(groups), return_inverse=True)
  group_label = np.zeros(len(uniq), labels.dtype)
  np.maximum.at(group_label, inverse, labels)
  return group_label, inverse


def _expand(group_sets, inverse):
  return [np.sort(np.flatnonzero(np.isin(inverse, g))) for g in group_sets]


def stratified_folds(labels, num_folds: int, seed: int, groups=None) -> list[np.ndarray]:
  """`num_folds` disjoint index arrays covering all samples, class ratios kept."""
  group_label, inverse = _group_view(labels, groups)
  rng = np.random.default_rng(seed)
  folds = [[] for _ in range(num_folds)]
  start = 0
  for c in np.unique(group_label):
    members = rng.permutation(np.flatnonzero(group_label == c))
    for j, m in enumerate(members):  # deal round-robin, continuing across classes
      folds[(start + j) % num_folds].append(m)
    start += len(members)
  return _expand([np.array(f, np.int64) for f in folds], inverse)


def stratified_holdout(labels, fraction: float, seed: int, groups=None):
  """`(rest, held_out)` index arrays with ~`fraction` of each class held out."""
  group_label, inverse = _group_view(labels, groups)
  rng = np.random.default_rng(seed)
  held = []
  for c in np.unique(group_label):
    members = rng.permutation(np.flatnonzero(group_label == c))
    held.append(members[:int(round(fraction * len(members)))])
  held = np.concatenate(held)
  rest = np.setdiff1d(np.arange(len(group_label)), held)
  return tuple(_expand([rest, held], inverse))


def make_splits(labels, *, scheme: str = "kfold", num_folds: int = 5, fold: int = 0,
                repeat: int = 0, test_fraction: float = 0.2, val_fraction: float = 0.1,
                seed: int = 0, groups=None) -> dict[str, np.ndarray]:
  """{'train', 'val', 'test'} indices.

  kfold: test is fold `fold` of `num_folds`; random: a stratified `test_fraction` drawn
  with seed `seed + repeat`. In both, `val_fraction` of the rest is held out for model
  selection (early stopping / best checkpoint).
  """
  labels = np.asarray(labels)
  if scheme == "kfold":
    if not 0 <= fold < num_folds:
      raise ValueError(f"fold {fold} not in [0, {num_folds})")
    test = stratified_folds(labels, num_folds, seed, groups)[fold]
    rest = np.setdiff1d(np.arange(len(labels)), test)
    sub_seed = seed * 1000 + fold + 1
  elif scheme == "random":
    rest, test = stratified_holdout(labels, test_fraction, seed + repeat, groups)
    sub_seed = (seed + repeat) * 1000 + 7
  else:
    raise ValueError(f"unknown split scheme {scheme!r} (kfold | random)")
  sub_groups = None if groups is None else np.asarray(groups)[rest]
  train, val = stratified_holdout(labels[rest], val_fraction, sub_seed, sub_groups)
  return {"train": rest[train], "val": rest[val], "test": test}
