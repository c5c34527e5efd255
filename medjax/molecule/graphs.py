"""Many molecular graphs in flat arrays (one row per atom / directed edge) + offsets.

A `GraphStore` is what a dataset keeps in memory and caches on disk (`.npz`): the
compact codes of `featurize.py` for every valid molecule, concatenated, with
`atom_ptr` / `edge_ptr` marking where molecule `i` starts and ends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from medjax.molecule import featurize

_FIELDS = ("atom_codes", "atom_mass", "edge_codes", "edge_index", "atom_ptr", "edge_ptr")


@dataclasses.dataclass
class GraphStore:
  atom_codes: np.ndarray  # [total atoms, groups] int16
  atom_mass: np.ndarray  # [total atoms] float32
  edge_codes: np.ndarray  # [total edges, groups] int8
  edge_index: np.ndarray  # [total edges, 2] int32, atom ids local to their molecule
  atom_ptr: np.ndarray  # [molecules + 1] int64
  edge_ptr: np.ndarray  # [molecules + 1] int64

  def __len__(self) -> int:
    return len(self.atom_ptr) - 1

  @property
  def num_atoms(self) -> np.ndarray:
    return np.diff(self.atom_ptr)

  @property
  def num_edges(self) -> np.ndarray:
    return np.diff(self.edge_ptr)

  def graph(self, i: int) -> featurize.MolGraph:
    a = slice(self.atom_ptr[i], self.atom_ptr[i + 1])
    e = slice(self.edge_ptr[i], self.edge_ptr[i + 1])
    return featurize.MolGraph(self.atom_codes[a], self.atom_mass[a],
                              self.edge_codes[e], self.edge_index[e])

  @classmethod
  def from_graphs(cls, graphs: Sequence[featurize.MolGraph]) -> GraphStore:
    def cat(name, shape, dtype):
      arrays = [getattr(g, name) for g in graphs]
      return np.concatenate(arrays) if arrays else np.zeros(shape, dtype)
    ptr = lambda sizes: np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return cls(
        atom_codes=cat("atom_codes", (0, len(featurize.ATOM_GROUPS)), np.int16),
        atom_mass=cat("atom_mass", (0,), np.float32),
        edge_codes=cat("edge_codes", (0, len(featurize.BOND_GROUPS)), np.int8),
        edge_index=cat("edge_index", (0, 2), np.int32),
        atom_ptr=ptr([g.num_atoms for g in graphs]),
        edge_ptr=ptr([g.num_edges for g in graphs]))

  def save(self, path, **extra: np.ndarray) -> None:
    np.savez_compressed(path, **{f: getattr(self, f) for f in _FIELDS}, **extra)

  @classmethod
  def load(cls, path) -> tuple[GraphStore, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files}
    store = cls(**{f: arrays.pop(f) for f in _FIELDS})
    return store, arrays


@dataclasses.dataclass
class Featurized:
  """Valid molecules of an input list, and what was dropped."""
  store: GraphStore
  valid: np.ndarray  # [valid molecules] positions in the input list
  invalid: np.ndarray  # positions in the input list that RDKit rejected


def featurize_many(smiles: Sequence[str]) -> Featurized:
  graphs, valid, invalid = [], [], []
  for i, s in enumerate(smiles):
    g = featurize.featurize_smiles(s)
    if g is None:
      invalid.append(i)
    else:
      graphs.append(g)
      valid.append(i)
  return Featurized(GraphStore.from_graphs(graphs), np.array(valid, np.int64),
                    np.array(invalid, np.int64))
