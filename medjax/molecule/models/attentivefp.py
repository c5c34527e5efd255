"""AttentiveFP atom layers (Xiong et al. 2020), after the PyTorch Geometric layout.

Layer 1 attends over neighbour + bond features; later layers are GAT-style over
neighbour states. Each layer's context updates the atom state with a GRU. Use with
the `gru_attention` readout for the full AttentiveFP model.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from medjax.molecule.models import graph_ops
from medjax.molecule.models.graph_ops import Graph


class _Attend(nn.Module):
  """context_v = ELU(sum_u softmax_u(LeakyReLU(a_n.n_uv + a_v.h_v)) W n_uv)."""
  hidden: int
  dropout: float

  @nn.compact
  def __call__(self, g: Graph, h, neighbour, *, train: bool):
    logits = nn.leaky_relu(nn.Dense(1, use_bias=False)(neighbour) +
                           graph_ops.gather(nn.Dense(1, use_bias=False)(h), g.dst), 0.01)
    alpha = graph_ops.segment_softmax(logits, g.dst, g.num_nodes, g.edge_mask)
    alpha = nn.Dropout(self.dropout)(alpha, deterministic=not train)
    values = nn.Dense(self.hidden, use_bias=False)(neighbour)
    context = graph_ops.segment_sum(alpha * values, g.dst, g.num_nodes)
    return nn.elu(context + self.param("bias", nn.initializers.zeros, (self.hidden,)))


class AttentiveFP(nn.Module):
  hidden: int = 200
  depth: int = 2
  dropout: float = 0.0

  @nn.compact
  def __call__(self, g: Graph, *, train: bool = False) -> jax.Array:
    drop = lambda x: nn.Dropout(self.dropout)(x, deterministic=not train)
    node_mask = g.node_mask[..., None]
    h = nn.leaky_relu(nn.Dense(self.hidden)(g.atoms), 0.01) * node_mask
    neighbour = jnp.concatenate([graph_ops.gather(g.atoms, g.src), g.bonds], -1)
    neighbour = nn.leaky_relu(nn.Dense(self.hidden)(neighbour), 0.01)
    for i in range(self.depth):
      if i > 0:
        neighbour = graph_ops.gather(nn.Dense(self.hidden, use_bias=False)(h), g.src)
      context = drop(_Attend(self.hidden, self.dropout)(g, h, neighbour, train=train))
      h, _ = nn.GRUCell(self.hidden)(h, context)
      h = nn.relu(h) * node_mask
    return h
