"""SMILES -> molecular graph features with RDKit (the Chemprop v1 feature set).

Atoms: element (atomic number 1..100), degree, formal charge, chirality tag, total
attached hydrogens, hybridisation (each one-hot with an "unknown" slot), aromaticity
and mass / 100. Bonds: type (single, double, triple, aromatic), conjugation, ring
membership and stereo (one-hot with an "unknown" slot).

Features are stored compactly as small integer codes, one per one-hot group (-1: no
bit set), and expanded to dense float vectors only when a batch is built
(`dense_atom_features`, `dense_bond_features`). Each bond becomes two directed edges,
`2k: a->b` and `2k+1: b->a`, so the reverse of edge `e` is `e ^ 1`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from rdkit import Chem, RDLogger

FEATURIZER_VERSION = 1  # bump when features change: invalidates cached arrays


@dataclasses.dataclass(frozen=True)
class OneHot:
  """A one-hot group; values outside `choices` go to an extra unknown slot."""
  name: str
  choices: tuple
  unknown: bool = True

  @property
  def size(self) -> int:
    return len(self.choices) + int(self.unknown)

  def code(self, value) -> int:
    if value in self.choices:
      return self.choices.index(value)
    return len(self.choices) if self.unknown else -1


_HYBRID = Chem.rdchem.HybridizationType
ATOM_GROUPS = (
    OneHot("element", tuple(range(1, 101))),
    OneHot("degree", (0, 1, 2, 3, 4, 5)),
    OneHot("formal_charge", (-2, -1, 0, 1, 2)),
    OneHot("chirality", (0, 1, 2, 3)),  # CHI_UNSPECIFIED, CW, CCW, OTHER
    OneHot("num_hs", (0, 1, 2, 3, 4)),
    OneHot("hybridization", (_HYBRID.SP, _HYBRID.SP2, _HYBRID.SP3, _HYBRID.SP3D,
                             _HYBRID.SP3D2)),
    OneHot("aromatic", (True,), unknown=False),
)
BOND_GROUPS = (
    OneHot("bond_type", (1.0, 2.0, 3.0, 1.5), unknown=False),  # as GetBondTypeAsDouble
    OneHot("conjugated", (True,), unknown=False),
    OneHot("in_ring", (True,), unknown=False),
    OneHot("stereo", (0, 1, 2, 3, 4, 5)),  # STEREONONE, ANY, Z, E, CIS, TRANS
)


def _offsets(groups):
  return np.cumsum([0] + [g.size for g in groups])


ATOM_OFFSETS = _offsets(ATOM_GROUPS)
BOND_OFFSETS = _offsets(BOND_GROUPS)
ATOM_DIM = int(ATOM_OFFSETS[-1]) + 1  # + mass
BOND_DIM = int(BOND_OFFSETS[-1])


def feature_index(group: str, value, groups=ATOM_GROUPS) -> int:
  """Column of the dense feature vector that is 1 when `group == value`."""
  offsets = _offsets(groups)
  for g, off in zip(groups, offsets):
    if g.name == group:
      code = g.code(value)
      if code < 0:
        raise ValueError(f"{value!r} has no bit in group {group}")
      return int(off + code)
  raise KeyError(group)


MASS_INDEX = ATOM_DIM - 1


@dataclasses.dataclass
class MolGraph:
  atom_codes: np.ndarray  # [atoms, len(ATOM_GROUPS)] int16
  atom_mass: np.ndarray  # [atoms] float32, mass / 100
  edge_codes: np.ndarray  # [2 * bonds, len(BOND_GROUPS)] int8
  edge_index: np.ndarray  # [2 * bonds, 2] int32 (source, destination) atom

  @property
  def num_atoms(self) -> int:
    return len(self.atom_codes)

  @property
  def num_edges(self) -> int:
    return len(self.edge_index)


def _atom_values(atom):
  return (atom.GetAtomicNum(), atom.GetTotalDegree(), atom.GetFormalCharge(),
          int(atom.GetChiralTag()), atom.GetTotalNumHs(), atom.GetHybridization(),
          atom.GetIsAromatic())


def _bond_values(bond):
  return (bond.GetBondTypeAsDouble(), bond.GetIsConjugated(), bond.IsInRing(),
          int(bond.GetStereo()))


def mol_from_smiles(smiles) -> Chem.Mol | None:
  """RDKit molecule, or None for an unparsable or empty SMILES (no log spam)."""
  if not isinstance(smiles, str) or not smiles.strip():
    return None
  RDLogger.DisableLog("rdApp.*")
  try:
    mol = Chem.MolFromSmiles(smiles)
  finally:
    RDLogger.EnableLog("rdApp.*")
  if mol is None or mol.GetNumAtoms() == 0:
    return None
  return mol


def featurize_mol(mol: Chem.Mol) -> MolGraph:
  atom_codes = np.array(
      [[g.code(v) for g, v in zip(ATOM_GROUPS, _atom_values(a))] for a in mol.GetAtoms()],
      np.int16).reshape(-1, len(ATOM_GROUPS))
  atom_mass = np.array([a.GetMass() * 0.01 for a in mol.GetAtoms()], np.float32)
  codes, index = [], []
  for bond in mol.GetBonds():
    code = [g.code(v) for g, v in zip(BOND_GROUPS, _bond_values(bond))]
    a, b = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
    codes += [code, code]
    index += [(a, b), (b, a)]
  return MolGraph(atom_codes, atom_mass,
                  np.array(codes, np.int8).reshape(-1, len(BOND_GROUPS)),
                  np.array(index, np.int32).reshape(-1, 2))


def featurize_smiles(smiles: str) -> MolGraph | None:
  mol = mol_from_smiles(smiles)
  return None if mol is None else featurize_mol(mol)


def _dense(codes, offsets, dim):
  codes = np.asarray(codes)
  out = np.zeros((codes.shape[0], dim), np.float32)
  rows, cols = np.nonzero(codes >= 0)
  out[rows, offsets[cols] + codes[rows, cols]] = 1.0
  return out


def dense_atom_features(atom_codes, atom_mass) -> np.ndarray:
  out = _dense(atom_codes, ATOM_OFFSETS, ATOM_DIM)
  out[:, MASS_INDEX] = atom_mass
  return out


def dense_bond_features(edge_codes) -> np.ndarray:
  return _dense(edge_codes, BOND_OFFSETS, BOND_DIM)
