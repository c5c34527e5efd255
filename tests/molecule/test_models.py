"""Models: padding invariance, dropout streams, D-MPNN against a numpy reference."""

import jax
import ml_collections
import numpy as np
import pytest
from rdkit import Chem

from medjax.molecule import batching, featurize, graphs, models
from medjax.molecule.models import graph_ops
from medjax.molecule.task import GRAPH_KEYS

SMILES = ["CC(=O)Oc1ccccc1C(=O)O", "CCO", "C", "c1ccncc1", "O=C([O-])CC[N+](C)(C)C",
          "C/C=C/C", "[Na+].[Cl-]"]


@pytest.fixture(scope="module")
def store():
  return graphs.featurize_many(SMILES).store


def inputs(batch):
  out = {k: batch[k] for k in GRAPH_KEYS}
  out["graph_mask"] = batch["_mask"]
  return out


def model(name, readout):
  cfg = ml_collections.ConfigDict(dict(model=name, hidden=16, depth=3, dropout=0.2,
                                       readout=readout, head_hidden=8, head_layers=2))
  return models.build_model(cfg, out_dim=3)


@pytest.mark.parametrize("name,readout", [  # gin and attentivefp: -m slow (6-11 s each)
    ("dmpnn", "mean"), pytest.param("gin", "attention", marks=pytest.mark.slow),
    pytest.param("attentivefp", "gru_attention", marks=pytest.mark.slow)])
def test_alone_or_padded_in_a_batch_gives_the_same_output(store, name, readout):
  m = model(name, readout)
  alone_packer = batching.BlockPacker(store, batching.make_budget(store, 1, slack=0.1))
  alone = batching.sequential_batches(alone_packer, [0], n_blocks=1)[0]
  variables = m.init(jax.random.key(0), **inputs(alone))
  want = m.apply(variables, **inputs(alone))[0, 0]
  # Molecule 0 third in a bigger block, in the second of two blocks.
  packer = batching.BlockPacker(store, batching.make_budget(store, 5, slack=2.0))
  batch = batching.stack_blocks([packer.pack([3, 4]), packer.pack([1, 2, 0, 5])])
  got = m.apply(variables, **inputs(batch))
  np.testing.assert_allclose(got[1, 2], want, rtol=1e-5, atol=1e-5)
  assert np.isfinite(got).all()
  # Dropout draws from the `dropout` stream only: same key, same output.
  train = lambda key: m.apply(variables, **inputs(alone), train=True, rngs={"dropout": key})
  a, b = train(jax.random.key(1)), train(jax.random.key(2))
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(a, train(jax.random.key(1)))


def dmpnn_reference(smiles, p, depth):
  """Chemprop's D-MPNN written with loops over RDKit bonds."""
  relu = lambda x: np.maximum(x, 0)
  mol = Chem.MolFromSmiles(smiles)
  g = featurize.featurize_mol(mol)
  x = featurize.dense_atom_features(g.atom_codes, g.atom_mass)
  bond_features = {}
  for b in mol.GetBonds():
    code = [grp.code(v) for grp, v in zip(featurize.BOND_GROUPS, featurize._bond_values(b))]
    f = featurize.dense_bond_features(np.array([code]))[0]
    a, c = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
    bond_features[(a, c)] = bond_features[(c, a)] = f
  w_i = np.concatenate([p["W_i_atom"]["kernel"], p["W_i_bond"]["kernel"]])
  pre = {(v, w): np.concatenate([x[v], f]) @ w_i for (v, w), f in bond_features.items()}
  h = {k: relu(v) for k, v in pre.items()}
  neighbours = lambda v: [n.GetIdx() for n in mol.GetAtomWithIdx(v).GetNeighbors()]
  for _ in range(depth - 1):
    h = {(v, w): relu(pre[(v, w)] + sum((h[(k, v)] for k in neighbours(v) if k != w),
                                        np.zeros(len(pre[(v, w)]))) @ p["W_h"]["kernel"])
         for (v, w) in h}
  out = []
  for v in range(mol.GetNumAtoms()):
    m = sum((h[(k, v)] for k in neighbours(v)), np.zeros(p["W_o"]["kernel"].shape[1]))
    out.append(relu(np.concatenate([x[v], m]) @ p["W_o"]["kernel"] + p["W_o"]["bias"]))
  return np.stack(out)


@pytest.mark.parametrize("depth", [1, 3])
def test_dmpnn_matches_numpy_reference(store, depth):
  encoder = models.DMPNN(hidden=12, depth=depth)
  packer = batching.BlockPacker(store, batching.make_budget(store, 3))
  batch = batching.stack_blocks([packer.pack([0, 1, 2])])
  g = graph_ops.Graph(batch["atom_features"], batch["bond_features"], batch["edge_src"],
                      batch["edge_dst"], batch["edge_rev"], batch["node_mask"],
                      batch["edge_mask"])
  params = encoder.init(jax.random.key(3), g)["params"]
  got = np.asarray(encoder.apply({"params": params}, g))[0]
  p = jax.tree.map(np.asarray, params)
  start = 0
  for i in (0, 1, 2):
    want = dmpnn_reference(SMILES[i], p, depth)
    np.testing.assert_allclose(got[start:start + len(want)], want, rtol=1e-4, atol=1e-5)
    start += len(want)
  assert not got[start:].any()  # padded atoms stay zero


def test_segment_softmax_matches_numpy():
  logits = np.array([[1.0, 2.0, 0.5, 3.0, -1.0]])
  seg = np.array([[0, 0, 1, 1, 2]])
  mask = np.array([[1.0, 1.0, 1.0, 1.0, 0.0]])
  got = np.asarray(graph_ops.segment_softmax(logits, seg, 3, mask))[0]
  e = np.exp(logits[0])
  want = [e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1]), e[2] / (e[2] + e[3]),
          e[3] / (e[2] + e[3]), 0.0]
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_sum_and_mean_pool_skip_padding():
  h = np.arange(12, dtype=np.float32).reshape(1, 6, 2)
  node_graph = np.array([[0, 0, 0, 1, 2, 2]])  # graph 2 = padding (2 graphs)
  node_mask = np.array([[1, 1, 1, 1, 0, 0]], np.float32)
  total = np.asarray(models.readout.sum_pool(h, node_graph, node_mask, 2))[0]
  np.testing.assert_allclose(total, [h[0, :3].sum(0), h[0, 3]])
  mean = np.asarray(models.readout.mean_pool(h, node_graph, node_mask, 2))[0]
  np.testing.assert_allclose(mean, [h[0, :3].mean(0), h[0, 3]])
