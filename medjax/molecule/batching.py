"""Padded graph batches with fixed budgets, as a checkpointable grain pipeline.

A *block* packs up to `budget.graphs` molecules into `budget.nodes` atom slots and
`budget.edges` directed-edge slots (the ogbg_molpcba recipe). The last atom slot
is always padding: padded edges run from it to itself (their own reverse) and
padded atoms belong to graph `budget.graphs`, a segment no readout keeps, so padding
never touches a real molecule. `edge_dst` and `node_graph` never decrease within a
block (sorted segment sums). A *batch* stacks `n_blocks` blocks on a leading
axis, one per device, so data parallelism shards whole blocks:

  atom_features [n_blocks, nodes, ATOM_DIM]   bond_features [n_blocks, edges, BOND_DIM]
  edge_src / edge_dst / edge_rev [n_blocks, edges] int32 (block-local ids)
  node_graph [n_blocks, nodes] int32          node_mask / edge_mask (1: real)
  _mask / index [n_blocks, graphs] (1 / store id: real molecule; 0 / -1: padding)
  targets / target_mask [n_blocks, graphs, tasks]; descriptors [n_blocks, graphs, D]

Every batch has the same shapes, so training and evaluation compile once each.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import grain
import numpy as np

from medjax.molecule import featurize, packing
from medjax.molecule.graphs import GraphStore

# Training batches packed per vectorised pass (`packing.pack_blocks`); 0: one block
# at a time with `BlockPacker.pack` (the reference path, same batches).
BATCHES_AHEAD = 8


@dataclasses.dataclass(frozen=True)
class Budget:
  graphs: int
  nodes: int  # the last slot is reserved for padding
  edges: int


def _round_up(x: float, multiple: int) -> int:
  return int(math.ceil(x / multiple) * multiple)


def make_budget(store: GraphStore, graphs: int, slack: float = 1.15,
                multiple: int = 32) -> Budget:
  """Room for `graphs` average molecules x `slack`, and always for the largest one."""
  na, ne = store.num_atoms, store.num_edges
  nodes = max(graphs * float(na.mean()) * slack, float(na.max())) + 1
  edges = max(graphs * float(ne.mean()) * slack, float(ne.max()), 1)
  return Budget(graphs, _round_up(nodes, multiple), _round_up(edges, multiple))


class BlockPacker:
  """Builds padded blocks from molecule ids of a `GraphStore`."""

  def __init__(self, store: GraphStore, budget: Budget,
               targets: np.ndarray | None = None,
               descriptors: np.ndarray | None = None):
    self.store, self.budget = store, budget
    self.targets, self.descriptors = targets, descriptors
    self._num_atoms, self._num_edges = store.num_atoms, store.num_edges
    self._edge_order = None

  @property
  def edge_order(self) -> packing.EdgeOrder:
    """The store's per-molecule sorted edges, for `packing.pack_blocks` (built once)."""
    if self._edge_order is None:
      self._edge_order = packing.EdgeOrder(self.store)
    return self._edge_order

  def pack_many(self, id_lists: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    """`stack_blocks([self.pack(ids) for ids in id_lists])`, in one vectorised pass."""
    for ids in id_lists:
      if len(ids) > self.budget.graphs or self.take(ids) != len(ids):
        raise ValueError(f"{len(ids)} molecules do not fit in {self.budget}")
    return packing.pack_blocks(self, id_lists, self.edge_order)

  def fits(self, atoms: int, edges: int, i: int) -> bool:
    return (atoms + self._num_atoms[i] <= self.budget.nodes - 1
            and edges + self._num_edges[i] <= self.budget.edges)

  def take(self, ids: Sequence[int], start: int = 0) -> int:
    """End of the longest run `ids[start:end]` that fits in one block."""
    end, atoms, edges = start, 0, 0
    while end < len(ids) and end - start < self.budget.graphs:
      if not self.fits(atoms, edges, ids[end]):
        break
      atoms += self._num_atoms[ids[end]]
      edges += self._num_edges[ids[end]]
      end += 1
    if end == start and start < len(ids):
      raise ValueError(f"molecule {ids[start]} does not fit in {self.budget}")
    return end

  def pack(self, ids: Sequence[int]) -> dict[str, np.ndarray]:
    ids = np.asarray(ids, np.int64)
    g, n_slots, _ = dataclasses.astuple(self.budget)
    if len(ids) > g or self.take(ids) != len(ids):
      raise ValueError(f"{len(ids)} molecules do not fit in {self.budget}")
    s, na, k = self.store, self._num_atoms[ids], len(ids)
    atom_rows = packing.ranges(s.atom_ptr[ids], na)
    n = len(atom_rows)
    b = {
        "atom_features": np.zeros((n_slots, featurize.ATOM_DIM), np.float32),
        "node_graph": np.full(n_slots, g, np.int32),
        "node_mask": (np.arange(n_slots) < n).astype(np.float32),
        "_mask": (np.arange(g) < k).astype(np.float32),
        "index": np.full(g, -1, np.int32),
    }
    b["atom_features"][:n] = featurize.dense_atom_features(
        s.atom_codes[atom_rows], s.atom_mass[atom_rows])
    b["node_graph"][:n] = np.repeat(np.arange(k), na)
    b["index"][:k] = ids
    b.update(self._edges(ids))
    b.update(self._per_graph(ids))
    return b

  def _edges(self, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Directed edges with block-local atom ids, sorted by destination atom."""
    s, n_slots, e_slots = self.store, self.budget.nodes, self.budget.edges
    na, ne = self._num_atoms[ids], self._num_edges[ids]
    edge_rows = packing.ranges(s.edge_ptr[ids], ne)
    e = len(edge_rows)
    atom_base = np.repeat(np.cumsum(na) - na, ne)
    edge_base = np.repeat(np.cumsum(ne) - ne, ne)
    reverse = edge_base + ((edge_rows - np.repeat(s.edge_ptr[ids], ne)) ^ 1)
    src, dst = (s.edge_index[edge_rows] + atom_base[:, None]).T
    order = np.argsort(dst, kind="stable")
    new_position = np.empty_like(order)
    new_position[order] = np.arange(e)
    b = {
        "bond_features": np.zeros((e_slots, featurize.BOND_DIM), np.float32),
        "edge_src": np.full(e_slots, n_slots - 1, np.int32),
        "edge_dst": np.full(e_slots, n_slots - 1, np.int32),
        "edge_rev": np.arange(e_slots, dtype=np.int32),
        "edge_mask": (np.arange(e_slots) < e).astype(np.float32),
    }
    b["bond_features"][:e] = featurize.dense_bond_features(s.edge_codes[edge_rows[order]])
    b["edge_src"][:e], b["edge_dst"][:e] = src[order], dst[order]
    b["edge_rev"][:e] = new_position[reverse[order]]
    return b

  def _per_graph(self, ids: np.ndarray) -> dict[str, np.ndarray]:
    out, g, k = {}, self.budget.graphs, len(ids)
    if self.targets is not None:
      t = self.targets[ids]
      out["targets"] = np.zeros((g, t.shape[1]), np.float32)
      out["target_mask"] = np.zeros((g, t.shape[1]), np.float32)
      out["targets"][:k] = np.nan_to_num(t)
      out["target_mask"][:k] = ~np.isnan(t)
    if self.descriptors is not None:
      out["descriptors"] = np.zeros((g, self.descriptors.shape[1]), np.float32)
      out["descriptors"][:k] = self.descriptors[ids]
    return out


def stack_blocks(blocks: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  return {k: np.stack([b[k] for b in blocks]) for k in blocks[0]}


def sequential_batches(packer: BlockPacker, ids: Sequence[int],
                       n_blocks: int) -> list[dict[str, np.ndarray]]:
  """Every id exactly once, in order; the last batch is padded with empty blocks."""
  ids = list(ids)
  blocks, start = [], 0
  while start < len(ids):
    end = packer.take(ids, start)
    blocks.append(packer.pack(ids[start:end]))
    start = end
  if not blocks or len(blocks) % n_blocks:
    blocks += [packer.pack([])] * (n_blocks - len(blocks) % n_blocks)
  return [stack_blocks(blocks[i:i + n_blocks]) for i in range(0, len(blocks), n_blocks)]


class MoleculeSource:
  """One molecule per block, for DP-SGD's Poisson sampling (medjax.privacy.dp): a
  batch's leading axis is then the molecule axis, so each row is one example.
  `packer` must hold one graph per block (`make_budget(store, 1)` fits any molecule)."""

  def __init__(self, packer: BlockPacker, ids: np.ndarray):
    if packer.budget.graphs != 1:
      raise ValueError(f"MoleculeSource needs one graph per block, not {packer.budget}")
    self.packer, self.ids = packer, np.asarray(ids, np.int64)

  def __len__(self) -> int:
    return len(self.ids)

  def batch(self, ids, rows: int) -> dict[str, np.ndarray]:
    blocks = [self.packer.pack([i]) for i in self.ids[np.asarray(ids, np.int64)]]
    return stack_blocks(blocks + [self.packer.pack([])] * (rows - len(blocks)))


class PackedGraphIterDataset(grain.IterDataset):
  """Endless batches of `n_blocks` blocks over `ids`, reshuffled every epoch.

  Iterator state is three integers (epoch, position in the epoch's permutation, id
  left over from the previous block), so checkpoints are tiny and exact. Blocks are
  planned and packed `batches_ahead` batches at a time (`packing.pack_blocks`); the
  state is that after the last batch handed out, so a restored iterator repacks the
  rest. `batches_ahead=0` packs block by block (`BlockPacker.pack`): same batches.
  """

  def __init__(self, packer: BlockPacker, ids: np.ndarray, n_blocks: int, seed: int,
               batches_ahead: int = BATCHES_AHEAD):
    super().__init__()
    self._packer, self._ids, self._n_blocks, self._seed = packer, ids, n_blocks, seed
    self._ahead = batches_ahead

  def __iter__(self) -> grain.DatasetIterator:
    return _PackedGraphIterator(self._packer, self._ids, self._n_blocks, self._seed,
                                self._ahead)


class _PackedGraphIterator(grain.DatasetIterator):

  def __init__(self, packer: BlockPacker, ids: np.ndarray, n_blocks: int, seed: int,
               batches_ahead: int = BATCHES_AHEAD):
    super().__init__()
    if not len(ids):
      raise ValueError("no molecules to train on")
    self._packer, self._ids, self._n_blocks, self._seed = packer, ids, n_blocks, seed
    self._ahead = batches_ahead
    self._sizes = (packer.store.num_atoms.tolist(), packer.store.num_edges.tolist())
    self.set_state({"epoch": 0, "position": 0, "pending": -1})

  def _order(self, epoch: int) -> np.ndarray:
    rng = np.random.default_rng((self._seed, epoch))
    return self._ids[rng.permutation(len(self._ids))]

  def _next_id(self) -> int:
    if self._pending >= 0:
      i, self._pending = self._pending, -1
      return i
    if self._position == len(self._ids):
      self._epoch, self._position = self._epoch + 1, 0
      self._epoch_order = self._order(self._epoch)
    self._position += 1
    return int(self._epoch_order[self._position - 1])

  def _next_ids(self) -> list[int]:
    """The next block's molecules: as many as fit (`BlockPacker.fits`, on lists)."""
    ids, atoms, edges = [], 0, 0
    (num_atoms, num_edges), budget = self._sizes, self._packer.budget
    while len(ids) < budget.graphs:
      i = self._next_id()
      if atoms + num_atoms[i] > budget.nodes - 1 or edges + num_edges[i] > budget.edges:
        if not ids:
          raise ValueError(f"molecule {i} does not fit in {budget}")
        self._pending = i
        break
      ids.append(i)
      atoms += num_atoms[i]
      edges += num_edges[i]
    return ids

  def __next__(self) -> dict[str, np.ndarray]:
    if self._ahead <= 0:
      batch = stack_blocks([self._packer.pack(self._next_ids())
                            for _ in range(self._n_blocks)])
      self._handed_out = self._planned_state()
      return batch
    if not self._queue:
      self._pack_ahead()
    batch, self._handed_out = self._queue.pop(0)
    return batch

  def _pack_ahead(self):
    """Plans and packs the next `batches_ahead` batches in one pass."""
    lists, states = [], []
    for _ in range(self._ahead):
      lists += [self._next_ids() for _ in range(self._n_blocks)]
      states.append(self._planned_state())
    arrays = packing.pack_blocks(self._packer, lists, self._packer.edge_order)
    arrays = {k: v.reshape(self._ahead, self._n_blocks, *v.shape[1:])
              for k, v in arrays.items()}
    self._queue = [({k: v[b] for k, v in arrays.items()}, state)
                   for b, state in enumerate(states)]

  def _planned_state(self):
    return {"epoch": self._epoch, "position": self._position, "pending": self._pending}

  def get_state(self):
    return dict(self._handed_out)

  def set_state(self, state):
    self._epoch, self._position = int(state["epoch"]), int(state["position"])
    self._pending = int(state["pending"])
    self._epoch_order = self._order(self._epoch)
    self._queue, self._handed_out = [], self._planned_state()


def training_stream(packer: BlockPacker, ids: np.ndarray, n_blocks: int, seed: int,
                    batches_ahead: int = BATCHES_AHEAD) -> grain.IterDataset:
  """Endless, reshuffled each epoch, checkpointable."""
  return PackedGraphIterDataset(packer, np.asarray(ids, np.int64), n_blocks, seed,
                                batches_ahead)
