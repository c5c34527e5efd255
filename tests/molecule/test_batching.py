"""Padded graph blocks: layout invariants, coverage, checkpointable iteration."""

import collections

import numpy as np
import pytest

from medjax.molecule import batching, featurize, graphs

SMILES = ["CCO", "c1ccccc1", "C", "CC(=O)Oc1ccccc1C(=O)O", "[Na+].[Cl-]", "C/C=C/C",
          "c1ccncc1", "CCN(CC)CC", "O=C([O-])CC[N+](C)(C)C", "C1CC2CCC1C2"]


@pytest.fixture(scope="module")
def store():
  return graphs.featurize_many(SMILES).store


def test_budget_fits_the_largest_molecule(store):
  budget = batching.make_budget(store, graphs=1, slack=0.1)
  assert budget.nodes - 1 >= store.num_atoms.max()
  assert budget.edges >= store.num_edges.max()
  assert budget.nodes % 32 == 0 and budget.edges % 32 == 0


def test_block_layout(store):
  targets = np.arange(len(store), dtype=np.float32)[:, None]
  targets[2] = np.nan
  packer = batching.BlockPacker(store, batching.make_budget(store, 4), targets)
  ids = [3, 0, 2, 8]
  b = packer.pack(ids)
  n, e = store.num_atoms[ids].sum(), store.num_edges[ids].sum()
  assert b["node_mask"].sum() == n and b["edge_mask"].sum() == e
  np.testing.assert_array_equal(b["index"], ids)
  np.testing.assert_array_equal(b["_mask"], 1)
  np.testing.assert_array_equal(b["target_mask"][:, 0], [1, 1, 0, 1])
  np.testing.assert_array_equal(b["targets"][:, 0], [3, 0, 0, 8])
  real = slice(0, e)
  src, dst, rev = b["edge_src"], b["edge_dst"], b["edge_rev"]
  # The reverse of every edge runs the other way; padding edges are their own reverse.
  np.testing.assert_array_equal(src[rev[real]], dst[real])
  np.testing.assert_array_equal(dst[rev[real]], src[real])
  assert np.all(rev[e:] == np.arange(e, len(rev)))
  assert np.all(src[e:] == packer.budget.nodes - 1) and np.all(dst[e:] == packer.budget.nodes - 1)
  assert np.all(np.diff(dst) >= 0) and np.all(np.diff(b["node_graph"]) >= 0)
  # Edges stay within their molecule.
  np.testing.assert_array_equal(b["node_graph"][src[real]], b["node_graph"][dst[real]])
  np.testing.assert_array_equal(np.bincount(b["node_graph"][:n]), store.num_atoms[ids])
  assert np.all(b["node_graph"][n:] == 4)
  # Features of molecule 2 ("C") are its own.
  atom = np.flatnonzero(b["node_graph"] == 2)
  g = store.graph(2)
  np.testing.assert_array_equal(b["atom_features"][atom],
                                featurize.dense_atom_features(g.atom_codes, g.atom_mass))
  assert not b["atom_features"][n:].any() and not b["bond_features"][e:].any()


def test_bond_features_follow_their_edges(store):
  packer = batching.BlockPacker(store, batching.make_budget(store, 2))
  b = packer.pack([5])  # C/C=C/C: one double bond, in the middle
  double = featurize.feature_index("bond_type", 2.0, featurize.BOND_GROUPS)
  edges = np.flatnonzero(b["bond_features"][:, double] == 1)
  assert sorted(zip(b["edge_src"][edges], b["edge_dst"][edges])) == [(1, 2), (2, 1)]


def test_too_many_molecules_is_an_error(store):
  packer = batching.BlockPacker(store, batching.make_budget(store, 2))
  with pytest.raises(ValueError):
    packer.pack([0, 1, 2])


def test_sequential_batches_cover_every_molecule_once(store):
  packer = batching.BlockPacker(store, batching.make_budget(store, 3, slack=0.5))
  ids = [9, 1, 3, 0, 5, 7, 2]
  batches = batching.sequential_batches(packer, ids, n_blocks=2)
  seen = np.concatenate([b["index"][b["_mask"] > 0] for b in batches])
  np.testing.assert_array_equal(seen, ids)
  shapes = {tuple((k, v.shape) for k, v in b.items()) for b in batches}
  assert len(shapes) == 1 and batches[0]["atom_features"].shape[0] == 2


def test_training_stream_resumes_from_its_state(store):
  packer = batching.BlockPacker(store, batching.make_budget(store, 3, slack=0.6))
  stream = batching.training_stream(packer, np.arange(len(store)), n_blocks=2, seed=7)
  it = iter(stream)
  for _ in range(3):
    next(it)
  state = it.get_state()
  expected = [next(it)["index"] for _ in range(4)]
  resumed = iter(stream)
  resumed.set_state(state)
  for want in expected:
    np.testing.assert_array_equal(next(resumed)["index"], want)


def test_training_stream_visits_molecules_evenly(store):
  packer = batching.BlockPacker(store, batching.make_budget(store, 4, slack=0.7))
  it = iter(batching.training_stream(packer, np.arange(2, 10), n_blocks=1, seed=0))
  counts = collections.Counter()
  while sum(counts.values()) < 8 * 10:
    b = next(it)
    counts.update(b["index"][b["_mask"] > 0].tolist())
  assert set(counts) == set(range(2, 10))
  assert max(counts.values()) - min(counts.values()) <= 1
