"""Many padded blocks in one vectorised pass: the training stream's fast path.

`BlockPacker.pack` builds one block with a few dozen NumPy calls; at ESOL's ~64
molecules a block that Python overhead costs more host time than the arithmetic.
`pack_blocks` builds `B` blocks at once with the same number of calls, into arrays
`[B, ...]` equal, element for element, to `stack_blocks([packer.pack(ids) for ids
in id_lists])` (tests/molecule/test_packing.py checks this).

What makes it one pass: each molecule's edges sorted by destination atom (stable)
are computed once per store (`EdgeOrder`). A block lists its molecules' atoms in
order, so the block-wide stable sort of `pack` is the concatenation of these
per-molecule sorts, and each edge's reverse keeps its offset within the molecule.
Dense features are rows of a small table of the store's distinct feature vectors,
gathered straight into each block.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medjax.molecule import featurize
from medjax.molecule.graphs import GraphStore


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """Concatenation of arange(s, s + l) for each (s, l)."""
  shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
  return shift + np.arange(int(lengths.sum()))


class EdgeOrder:
  """Per molecule of `store`: its edge rows sorted (stable) by destination atom, and
  each sorted edge's reverse as a position in that sorted order. Also each atom's and
  sorted edge's row in a table of the store's distinct dense feature vectors (a few
  hundred), so a block's features are one row gather instead of a one-hot scatter."""

  def __init__(self, store: GraphStore):
    molecule = np.repeat(np.arange(len(store)), store.num_edges)
    self.rows = np.lexsort((store.edge_index[:, 1], molecule)).astype(np.int64)
    position = np.empty_like(self.rows)
    position[self.rows] = np.arange(len(self.rows))
    # Edges come in pairs 2k, 2k + 1 and molecules start at even rows: reverse = row ^ 1.
    self.rev_local = (position[self.rows ^ 1] - store.edge_ptr[molecule]).astype(np.int32)
    self.src = store.edge_index[self.rows, 0]
    self.dst = store.edge_index[self.rows, 1]
    self.atom_table, self.atom_kind = _distinct(store.atom_codes, featurize.ATOM_OFFSETS,
                                                featurize.ATOM_DIM)
    self.bond_table, bond_kind = _distinct(store.edge_codes, featurize.BOND_OFFSETS,
                                           featurize.BOND_DIM)
    self.bond_kind = bond_kind[self.rows]


def _distinct(codes: np.ndarray, offsets: np.ndarray, dim: int):
  """(dense vectors of the distinct code rows [kinds, dim] (mass column 0), each
  row's kind)."""
  if not len(codes):
    return np.zeros((0, dim), np.float32), np.zeros(0, np.int32)
  unique, kind = np.unique(codes, axis=0, return_inverse=True)
  table = np.zeros((len(unique), dim), np.float32)
  rows, groups = np.nonzero(unique >= 0)
  table[rows, offsets[groups] + unique[rows, groups]] = 1.0
  return table, kind.reshape(-1).astype(np.int32)


def _gather_rows(out: np.ndarray, table: np.ndarray, kinds: np.ndarray,
                 per_block: np.ndarray) -> None:
  """out[b, :n_b] = table[kinds of block b's items] (items are in block order)."""
  start = 0
  for b, n in enumerate(per_block.tolist()):
    if n:
      np.take(table, kinds[start:start + n], axis=0, out=out[b, :n])
    start += n


def _layout(lengths: np.ndarray, block: np.ndarray, blocks: int, slots: int):
  """Items (atoms or edges), `lengths` per molecule, molecules in block order: each
  item's row `block * slots + slot` of the flattened `[blocks * slots]` arrays, each
  molecule's first slot in its block, and the items per block."""
  per_block = np.bincount(block, weights=lengths, minlength=blocks).astype(np.int64)
  block_start = np.cumsum(per_block) - per_block
  first = np.cumsum(lengths) - lengths - block_start[block]
  flat = np.arange(int(lengths.sum())) + np.repeat(
      block * slots - block_start[block], lengths)
  return flat, first, per_block


def pack_blocks(packer, id_lists: Sequence[Sequence[int]],
                order: EdgeOrder) -> dict[str, np.ndarray]:
  """`stack_blocks([packer.pack(ids) for ids in id_lists])`, vectorised. Each list
  must fit in one block (the caller plans blocks with `packer.fits`)."""
  s, (g, n_slots, e_slots) = packer.store, (packer.budget.graphs, packer.budget.nodes,
                                           packer.budget.edges)
  count = len(id_lists)
  lengths = np.array([len(ids) for ids in id_lists], np.int64)
  ids = (np.concatenate([np.asarray(i, np.int64) for i in id_lists]) if lengths.sum()
         else np.zeros(0, np.int64))
  block = np.repeat(np.arange(count), lengths)
  graph = np.arange(len(ids)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
  na, ne = s.num_atoms[ids], s.num_edges[ids]
  atom, atom_first, atoms_per_block = _layout(na, block, count, n_slots)
  edge, edge_first, edges_per_block = _layout(ne, block, count, e_slots)
  atom_rows = ranges(s.atom_ptr[ids], na)
  sorted_rows = ranges(s.edge_ptr[ids], ne)  # positions in `order`
  out = {
      "atom_features": np.zeros((count, n_slots, featurize.ATOM_DIM), np.float32),
      "node_graph": np.full((count, n_slots), g, np.int32),
      "node_mask": np.zeros((count, n_slots), np.float32),
      "_mask": (np.arange(g) < lengths[:, None]).astype(np.float32),
      "index": np.full((count, g), -1, np.int32),
      "bond_features": np.zeros((count, e_slots, featurize.BOND_DIM), np.float32),
      "edge_src": np.full((count, e_slots), n_slots - 1, np.int32),
      "edge_dst": np.full((count, e_slots), n_slots - 1, np.int32),
      "edge_rev": np.tile(np.arange(e_slots, dtype=np.int32), (count, 1)),
      "edge_mask": np.zeros((count, e_slots), np.float32),
  }
  flat = {k: v.reshape(count * v.shape[1], -1) for k, v in out.items()}  # views
  _gather_rows(out["atom_features"], order.atom_table, order.atom_kind[atom_rows],
               atoms_per_block)
  flat["atom_features"][atom, featurize.MASS_INDEX] = s.atom_mass[atom_rows]
  flat["node_graph"][atom, 0] = np.repeat(graph, na)
  flat["node_mask"][atom, 0] = 1.0
  molecule = block * g + graph
  flat["index"][molecule, 0] = ids
  _gather_rows(out["bond_features"], order.bond_table, order.bond_kind[sorted_rows],
               edges_per_block)
  atom_base = np.repeat(atom_first, ne)
  flat["edge_src"][edge, 0] = order.src[sorted_rows] + atom_base
  flat["edge_dst"][edge, 0] = order.dst[sorted_rows] + atom_base
  flat["edge_rev"][edge, 0] = order.rev_local[sorted_rows] + np.repeat(edge_first, ne)
  flat["edge_mask"][edge, 0] = 1.0
  out.update(_per_graph(packer, ids, molecule, count))
  return out


def _per_graph(packer, ids, molecule, count) -> dict[str, np.ndarray]:
  """Targets, label masks and descriptors `[count, graphs, ...]`; `molecule`: each
  id's row `block * graphs + graph`."""
  out, g = {}, packer.budget.graphs
  if packer.targets is not None:
    t = packer.targets[ids]
    targets = np.zeros((count * g, t.shape[1]), np.float32)
    mask = np.zeros((count * g, t.shape[1]), np.float32)
    targets[molecule], mask[molecule] = np.nan_to_num(t), ~np.isnan(t)
    out["targets"] = targets.reshape(count, g, -1)
    out["target_mask"] = mask.reshape(count, g, -1)
  if packer.descriptors is not None:
    d = np.zeros((count * g, packer.descriptors.shape[1]), np.float32)
    d[molecule] = packer.descriptors[ids]
    out["descriptors"] = d.reshape(count, g, -1)
  return out
