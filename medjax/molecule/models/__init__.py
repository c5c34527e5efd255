"""Molecule property models: an atom encoder, a readout and an MLP head."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from medjax.engine.errors import InputError
from medjax.molecule.models import readout as readouts
from medjax.molecule.models.attentivefp import AttentiveFP
from medjax.molecule.models.dmpnn import DMPNN
from medjax.molecule.models.gin import GIN
from medjax.molecule.models.graph_ops import Graph

ENCODERS = {"dmpnn": DMPNN, "gin": GIN, "attentivefp": AttentiveFP}
READOUTS = ("sum", "mean", "attention", "gru_attention")


class MoleculeModel(nn.Module):
  """Batch of padded blocks -> per-molecule outputs `[blocks, graphs, out_dim]`."""
  encoder: nn.Module
  out_dim: int
  readout: str = "mean"
  head_hidden: int = 300
  head_layers: int = 2
  dropout: float = 0.0
  readout_steps: int = 2

  @nn.compact
  def __call__(self, atom_features, bond_features, edge_src, edge_dst, edge_rev,
               node_graph, node_mask, edge_mask, graph_mask, descriptors=None, *,
               train: bool = False) -> jax.Array:
    g = Graph(atom_features, bond_features, edge_src, edge_dst, edge_rev,
              node_mask, edge_mask)
    h = self.encoder(g, train=train)
    x = self._pool(h, node_graph, node_mask, graph_mask.shape[1], train)
    if descriptors is not None:
      x = jnp.concatenate([x, descriptors], axis=-1)
    return MLPHead(self.head_hidden, self.out_dim, self.head_layers, self.dropout)(
        x, train=train)

  def _pool(self, h, node_graph, node_mask, num_graphs, train):
    if self.readout == "sum":
      return readouts.sum_pool(h, node_graph, node_mask, num_graphs)
    if self.readout == "mean":
      return readouts.mean_pool(h, node_graph, node_mask, num_graphs)
    if self.readout == "attention":
      return readouts.AttentionPool()(h, node_graph, node_mask, num_graphs)
    if self.readout == "gru_attention":
      return readouts.GRUAttentionPool(h.shape[-1], self.readout_steps, self.dropout)(
          h, node_graph, node_mask, num_graphs, train=train)
    raise InputError(f"unknown readout {self.readout!r}; one of {READOUTS}")


MLPHead = readouts.MLPHead


def build_model(cfg: Any, out_dim: int) -> MoleculeModel:
  """From a config with `model, hidden, depth, dropout, readout, head_*` fields."""
  if cfg.model not in ENCODERS:
    raise InputError(f"unknown model {cfg.model!r}; one of {sorted(ENCODERS)}")
  encoder = ENCODERS[cfg.model](hidden=cfg.hidden, depth=cfg.depth, dropout=cfg.dropout)
  return MoleculeModel(encoder, out_dim, readout=cfg.readout,
                       head_hidden=cfg.head_hidden, head_layers=cfg.head_layers,
                       dropout=cfg.dropout)
