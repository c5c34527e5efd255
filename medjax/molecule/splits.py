"""Train / val / test splits: random, Bemis-Murcko scaffold, stratified; k folds.

Fractions follow Chemprop: `train = int(f_train * n)`, `val = int(f_val * n)`, the
rest is test. Two scaffold splits, both keeping each scaffold set whole (so no
scaffold is ever in two splits): each set goes to train if it fits, else val if it
fits, else test, taking the sets in the order

* `scaffold` (Chemprop's balanced split, seeded): sets bigger than half the val or
  test size first, shuffled, then the others, shuffled;
* `scaffold_sorted` (DeepChem / MoleculeNet, no seed): largest set first, so val and
  test get the rarest scaffolds; the harder split that pretraining papers quote.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from rdkit.Chem.Scaffolds import MurckoScaffold

from medjax.engine.errors import InputError
from medjax.molecule import featurize

KINDS = ("random", "scaffold", "scaffold_sorted", "stratified")
Split = dict[str, np.ndarray]


def _sizes(n: int, fractions: Sequence[float]) -> tuple[int, int]:
  if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6:
    raise InputError(f"--config.task.split_fractions={tuple(fractions)}: must be 3 numbers "
                     "summing to 1 (train, val, test)")
  return int(fractions[0] * n), int(fractions[1] * n)


def random_split(n: int, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> Split:
  order = np.random.default_rng(seed).permutation(n)
  n_train, n_val = _sizes(n, fractions)
  return {"train": np.sort(order[:n_train]),
          "val": np.sort(order[n_train:n_train + n_val]),
          "test": np.sort(order[n_train + n_val:])}


def scaffold(smiles: str) -> str:
  mol = featurize.mol_from_smiles(smiles)
  if mol is None:
    raise ValueError(f"invalid SMILES {smiles!r}")
  return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


def scaffold_sets(smiles: Sequence[str]) -> list[list[int]]:
  groups = defaultdict(list)
  for i, s in enumerate(smiles):
    groups[scaffold(s)].append(i)
  return list(groups.values())


def _balanced_order(sets: list[list[int]], big: float, seed: int) -> list[list[int]]:
  rng = np.random.default_rng(seed)
  large = [s for s in sets if len(s) > big]
  small = [s for s in sets if len(s) <= big]
  return [large[i] for i in rng.permutation(len(large))] + [
      small[i] for i in rng.permutation(len(small))]


def _sorted_order(sets: list[list[int]]) -> list[list[int]]:
  """DeepChem's order: by size, then first index, both descending."""
  return sorted(sets, key=lambda s: (len(s), s[0]), reverse=True)


def scaffold_split(smiles: Sequence[str], fractions=(0.8, 0.1, 0.1), seed: int = 0,
                   balanced: bool = True) -> Split:
  n = len(smiles)
  n_train, n_val = _sizes(n, fractions)
  big = min(n_val, n - n_train - n_val) / 2
  sets = scaffold_sets(smiles)
  order = _balanced_order(sets, big, seed) if balanced else _sorted_order(sets)
  out = {"train": [], "val": [], "test": []}
  for group in order:
    if len(out["train"]) + len(group) <= n_train:
      out["train"] += group
    elif len(out["val"]) + len(group) <= n_val:
      out["val"] += group
    else:
      out["test"] += group
  return {k: np.sort(np.array(v, np.int64)) for k, v in out.items()}


def strata(targets: np.ndarray, task_type: str, bins: int = 10) -> np.ndarray:
  """Stratum per molecule: first task's class (missing: its own), or its quantile bin."""
  y = np.asarray(targets, np.float64)[:, 0]
  if task_type == "regression":
    edges = np.nanquantile(y, np.linspace(0, 1, bins + 1)[1:-1])
    return np.where(np.isnan(y), -1, np.searchsorted(edges, y, side="right"))
  return np.where(np.isnan(y), -1, y).astype(np.int64)


def _rank_in_stratum(groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Random rank of each item within its stratum, and that stratum's size."""
  rng = np.random.default_rng(seed)
  order = np.lexsort((rng.random(len(groups)), groups))
  _, start, counts = np.unique(groups[order], return_index=True, return_counts=True)
  rank = np.empty(len(groups), np.int64)
  rank[order] = np.arange(len(groups)) - np.repeat(start, counts)
  size = np.empty(len(groups), np.int64)
  size[order] = np.repeat(counts, counts)
  return rank, size


def stratified_split(groups: np.ndarray, fractions=(0.8, 0.1, 0.1), seed: int = 0) -> Split:
  """Each stratum is cut in the same proportions (to within one molecule)."""
  rank, size = _rank_in_stratum(np.asarray(groups), seed)
  q = (rank + 0.5) / size
  cut1, cut2 = fractions[0], fractions[0] + fractions[1]
  return {"train": np.flatnonzero(q < cut1), "val": np.flatnonzero((q >= cut1) & (q < cut2)),
          "test": np.flatnonzero(q >= cut2)}


def fold_ids(kind: str, k: int, seed: int, smiles=None, groups=None) -> np.ndarray:
  """Fold (0..k-1) of each molecule; scaffold folds keep each scaffold in one fold."""
  n = len(smiles) if smiles is not None else len(groups)
  if kind == "random":
    fold = np.empty(n, np.int64)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return fold
  if kind == "stratified":
    rank, _ = _rank_in_stratum(np.asarray(groups), seed)
    return rank % k
  if kind in ("scaffold", "scaffold_sorted"):
    fold, load = np.empty(n, np.int64), np.zeros(k, np.int64)
    for group in _balanced_order(scaffold_sets(smiles), n / k / 2, seed):
      f = int(np.argmin(load))
      fold[group], load[f] = f, load[f] + len(group)
    return fold
  raise InputError(f"--config.task.split={kind!r}: unknown; one of {KINDS}")


def fold_split(fold: np.ndarray, r: int) -> Split:
  """Fold r is test, fold r + 1 is val, the others train."""
  k = int(fold.max()) + 1
  return {"train": np.flatnonzero((fold != r) & (fold != (r + 1) % k)),
          "val": np.flatnonzero(fold == (r + 1) % k), "test": np.flatnonzero(fold == r)}


def subset(n: int, size: int, seed: int = 0) -> np.ndarray:
  """Sorted ids of a random `size` of `n` molecules (all of them for size 0): learning
  curves and small-data studies on a big set, fixed while split seeds vary."""
  if size < 0 or size > n:
    raise InputError(f"--config.task.subset={size}: must be 0 (all) to {n}, the number "
                     "of valid molecules")
  if size == 0:
    return np.arange(n)
  return np.sort(np.random.default_rng(seed).permutation(n)[:size])


def make_split(kind: str, smiles: Sequence[str], targets: np.ndarray, task_type: str,
               fractions=(0.8, 0.1, 0.1), seed: int = 0, folds: int = 0,
               fold: int = 0) -> Split:
  """One split of a dataset; with `folds > 1`, fold `fold` of a k-fold partition."""
  groups = strata(targets, task_type) if kind == "stratified" else None
  if folds > 1:
    return fold_split(fold_ids(kind, folds, seed, smiles=smiles, groups=groups), fold)
  if kind == "random":
    return random_split(len(smiles), fractions, seed)
  if kind in ("scaffold", "scaffold_sorted"):
    return scaffold_split(smiles, fractions, seed, balanced=kind == "scaffold")
  if kind == "stratified":
    return stratified_split(groups, fractions, seed)
  raise InputError(f"--config.task.split={kind!r}: unknown; one of {KINDS}")
