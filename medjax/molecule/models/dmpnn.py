"""Directed message passing (D-MPNN, Yang et al. 2019, as in Chemprop v1).

Hidden states live on directed bonds v->w:
  h0_vw = ReLU(W_i [x_v, e_vw])          (as W_ia x_v + W_ib e_vw: W_ia runs on atoms)
  m_vw  = sum_{k->v} h_kv - h_wv          (all bonds into v except the reverse)
  h_vw  = ReLU(h0_vw + W_h m_vw)          (depth - 1 times)
  h_v   = ReLU(W_o [x_v, sum_{k->v} h_kv])
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from medjax.molecule.models import graph_ops
from medjax.molecule.models.graph_ops import Graph


class DMPNN(nn.Module):
  hidden: int = 300
  depth: int = 3
  dropout: float = 0.0

  @nn.compact
  def __call__(self, g: Graph, *, train: bool = False) -> jax.Array:
    drop = lambda x: nn.Dropout(self.dropout)(x, deterministic=not train)
    edge_mask = g.edge_mask[..., None]
    atom_in = nn.Dense(self.hidden, use_bias=False, name="W_i_atom")(g.atoms)
    h0 = (graph_ops.gather(atom_in, g.src) +
          nn.Dense(self.hidden, use_bias=False, name="W_i_bond")(g.bonds))
    h = nn.relu(h0) * edge_mask
    w_h = nn.Dense(self.hidden, use_bias=False, name="W_h")
    for _ in range(self.depth - 1):
      incoming = graph_ops.segment_sum(h, g.dst, g.num_nodes)
      message = graph_ops.gather(incoming, g.src) - graph_ops.gather(h, g.rev)
      h = drop(nn.relu(h0 + w_h(message))) * edge_mask
    incoming = graph_ops.segment_sum(h, g.dst, g.num_nodes)
    atoms = nn.Dense(self.hidden, name="W_o")(jnp.concatenate([g.atoms, incoming], -1))
    return drop(nn.relu(atoms)) * g.node_mask[..., None]
