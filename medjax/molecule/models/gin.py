"""Graph isomorphism network with bond features (GINE, Hu et al. 2020).

  h_v <- MLP((1 + eps) h_v + sum_{u->v} ReLU(h_u + W_e e_uv)),  eps = 0 (GIN-0),
with a LayerNorm inside the MLP (padding-safe, unlike batch norm).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from medjax.molecule.models import graph_ops
from medjax.molecule.models.graph_ops import Graph


class GIN(nn.Module):
  hidden: int = 300
  depth: int = 5
  dropout: float = 0.0

  @nn.compact
  def __call__(self, g: Graph, *, train: bool = False) -> jax.Array:
    node_mask = g.node_mask[..., None]
    h = nn.Dense(self.hidden, name="embed")(g.atoms) * node_mask
    for i in range(self.depth):
      e = nn.Dense(self.hidden, name=f"bond_{i}")(g.bonds)
      message = nn.relu(graph_ops.gather(h, g.src) + e) * g.edge_mask[..., None]
      x = h + graph_ops.segment_sum(message, g.dst, g.num_nodes)
      x = nn.relu(nn.LayerNorm()(nn.Dense(self.hidden)(x)))
      x = nn.Dense(self.hidden)(x)
      if i < self.depth - 1:
        x = nn.relu(x)
      h = nn.Dropout(self.dropout)(x, deterministic=not train) * node_mask
    return h
