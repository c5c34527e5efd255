"""Featurisation against hand-checked molecules."""

import numpy as np
import pytest
from rdkit import Chem

from medjax.molecule import featurize, graphs
from medjax.molecule.featurize import BOND_GROUPS, feature_index

SP2, SP3 = Chem.rdchem.HybridizationType.SP2, Chem.rdchem.HybridizationType.SP3


def atom_vector(smiles, atom):
  g = featurize.featurize_smiles(smiles)
  return featurize.dense_atom_features(g.atom_codes, g.atom_mass)[atom]


def bits(vector, **expected):
  return {group: vector[feature_index(group, value)] for group, value in expected.items()}


@pytest.mark.parametrize("smiles,atoms,bonds", [
    ("CCO", 3, 2), ("c1ccccc1", 6, 6), ("c1ccncc1", 6, 6), ("C", 1, 0),
    ("[Na+].[Cl-]", 2, 0), ("CC(=O)Oc1ccccc1C(=O)O", 13, 13),  # aspirin
    ("C1CC2CCC1C2", 7, 8),  # norbornane: bicyclic, 8 bonds
])
def test_atom_and_bond_counts(smiles, atoms, bonds):
  g = featurize.featurize_smiles(smiles)
  assert g.num_atoms == atoms and g.num_edges == 2 * bonds
  # Edge 2k and 2k+1 are the two directions of bond k.
  np.testing.assert_array_equal(g.edge_index[0::2], g.edge_index[1::2, ::-1])
  assert featurize.dense_atom_features(g.atom_codes, g.atom_mass).shape == (
      atoms, featurize.ATOM_DIM)
  assert featurize.dense_bond_features(g.edge_codes).shape == (2 * bonds, featurize.BOND_DIM)


def test_ethanol_oxygen():
  v = atom_vector("CCO", 2)
  assert bits(v, element=8, degree=2, num_hs=1, formal_charge=0, chirality=0,
              hybridization=SP3) == dict.fromkeys(
                  ["element", "degree", "num_hs", "formal_charge", "chirality",
                   "hybridization"], 1.0)
  assert v[featurize.MASS_INDEX] == pytest.approx(0.15999, abs=1e-4)
  assert v[:-1].sum() == 6  # six one-hot groups set, not aromatic
  methyl = atom_vector("CCO", 0)
  assert bits(methyl, element=6, degree=4, num_hs=3)["num_hs"] == 1.0


def test_aromatic_ring():
  g = featurize.featurize_smiles("c1ccncc1")
  dense = featurize.dense_atom_features(g.atom_codes, g.atom_mass)
  assert dense[:, feature_index("aromatic", True)].sum() == 6
  assert dense[:, feature_index("hybridization", SP2)].sum() == 6
  nitrogen = dense[3]
  assert bits(nitrogen, element=7, num_hs=0, degree=2)["element"] == 1.0
  assert nitrogen[feature_index("num_hs", 0)] == 1.0
  assert dense[:, feature_index("num_hs", 1)].sum() == 5
  bonds = featurize.dense_bond_features(g.edge_codes)
  for value, group in [(1.5, "bond_type"), (True, "in_ring"), (True, "conjugated")]:
    assert bonds[:, feature_index(group, value, BOND_GROUPS)].sum() == 12


def test_charged_atoms():
  n = atom_vector("C[N+](C)(C)C", 1)
  assert n[feature_index("formal_charge", 1)] == 1.0
  assert n[feature_index("degree", 4)] == 1.0 and n[feature_index("num_hs", 0)] == 1.0
  o = atom_vector("CC(=O)[O-]", 3)
  assert o[feature_index("formal_charge", -1)] == 1.0
  assert o[feature_index("formal_charge", 0)] == 0.0


def test_chirality_and_bond_stereo():
  # SMILES '@' is counter-clockwise (RDKit tag 2), '@@' clockwise (tag 1).
  assert atom_vector("C[C@H](N)O", 1)[feature_index("chirality", 2)] == 1.0
  assert atom_vector("C[C@@H](N)O", 1)[feature_index("chirality", 1)] == 1.0
  assert atom_vector("CC(N)O", 1)[feature_index("chirality", 0)] == 1.0
  for smiles, stereo in [("C/C=C/C", 3), ("C/C=C\\C", 2), ("CC=CC", 0)]:
    g = featurize.featurize_smiles(smiles)
    bonds = featurize.dense_bond_features(g.edge_codes)
    double = bonds[:, feature_index("bond_type", 2.0, BOND_GROUPS)] == 1
    assert double.sum() == 2
    assert np.all(bonds[double, feature_index("stereo", stereo, BOND_GROUPS)] == 1)


def test_unknown_element_goes_to_unknown_slot():
  v = atom_vector("*C", 0)  # dummy atom, atomic number 0
  assert v[feature_index("element", 0)] == 1.0
  assert feature_index("element", 0) == feature_index("element", 101)  # both unknown


@pytest.mark.parametrize("smiles", ["C1CC", "xyz", "", "   ", None, "C(C", "c1cccc1"])
def test_invalid_smiles_give_none(smiles):
  assert featurize.featurize_smiles(smiles) is None


def test_featurize_many_keeps_positions_of_valid_and_invalid():
  f = graphs.featurize_many(["CCO", "C1CC", "c1ccccc1", "", "C"])
  np.testing.assert_array_equal(f.valid, [0, 2, 4])
  np.testing.assert_array_equal(f.invalid, [1, 3])
  np.testing.assert_array_equal(f.store.num_atoms, [3, 6, 1])
  np.testing.assert_array_equal(f.store.graph(1).edge_index,
                                featurize.featurize_smiles("c1ccccc1").edge_index)
