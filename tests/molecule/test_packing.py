"""Vectorised block packing and the packed-ahead training stream: the same batches as
the one-block-at-a-time reference path (`BlockPacker.pack`), and exact resume."""

import numpy as np
import pytest

from medjax.molecule import batching, graphs

# Charged, disconnected, ring, stereo and one-atom molecules (no bonds: "C", "[Na+].[Cl-]").
SMILES = ["CCO", "c1ccccc1", "C", "CC(=O)Oc1ccccc1C(=O)O", "[Na+].[Cl-]", "C/C=C/C",
          "c1ccncc1", "CCN(CC)CC", "O=C([O-])CC[N+](C)(C)C", "C1CC2CCC1C2", "OC(=O)CN"]


@pytest.fixture(scope="module")
def packer():
  store = graphs.featurize_many(SMILES).store
  rng = np.random.default_rng(0)
  targets = rng.normal(size=(len(store), 2)).astype(np.float32)
  targets[[1, 4], [0, 1]] = np.nan  # missing labels
  descriptors = rng.normal(size=(len(store), 3)).astype(np.float32)
  return batching.BlockPacker(store, batching.make_budget(store, 3, slack=0.8),
                              targets, descriptors)


def _assert_same(got, want):
  assert sorted(got) == sorted(want)
  for key in want:
    assert got[key].dtype == want[key].dtype, key
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_pack_many_equals_packing_each_block(packer):
  id_lists = [[3, 0, 5], [], [4], [8, 10, 2], [9, 1], [2]]
  id_lists = [ids[:packer.take(ids)] for ids in id_lists]  # what fits, as planned
  want = batching.stack_blocks([packer.pack(ids) for ids in id_lists])
  _assert_same(packer.pack_many(id_lists), want)


def test_pack_many_refuses_what_does_not_fit(packer):
  with pytest.raises(ValueError, match="do not fit"):
    packer.pack_many([[0], [0, 1, 2, 3]])


@pytest.mark.parametrize("n_blocks", [1, 2])
def test_packed_ahead_stream_gives_the_reference_batches(packer, n_blocks):
  ids = np.arange(1, len(SMILES))
  fast = iter(batching.training_stream(packer, ids, n_blocks, seed=3, batches_ahead=3))
  reference = iter(batching.training_stream(packer, ids, n_blocks, seed=3, batches_ahead=0))
  for _ in range(10):  # several epochs, chunks of 3 batches
    _assert_same(next(fast), next(reference))
    assert fast.get_state() == reference.get_state()


def test_packed_ahead_stream_resumes_mid_chunk(packer):
  stream = batching.training_stream(packer, np.arange(len(SMILES)), 2, seed=7,
                                    batches_ahead=4)
  it = iter(stream)
  for _ in range(5):  # one chunk and one batch into the next
    next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(6)]
  resumed = iter(stream)
  resumed.set_state(state)
  for want in expected:
    _assert_same(next(resumed), want)
  reference = iter(batching.training_stream(packer, np.arange(len(SMILES)), 2, seed=7,
                                            batches_ahead=0))
  reference.set_state(state)
  _assert_same(next(reference), expected[0])
