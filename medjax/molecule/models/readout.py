"""Graph readouts (atoms -> molecule) and the MLP head shared by every encoder."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from medjax.molecule.models import graph_ops


def sum_pool(h, node_graph, node_mask, num_graphs):
  """h [B, N, H] -> [B, G, H]; padded atoms sit in segment G, dropped here."""
  pooled = graph_ops.segment_sum(h * node_mask[..., None], node_graph, num_graphs + 1)
  return pooled[:, :num_graphs]


def mean_pool(h, node_graph, node_mask, num_graphs):
  count = sum_pool(node_mask[..., None], node_graph, node_mask, num_graphs)
  return sum_pool(h, node_graph, node_mask, num_graphs) / jnp.maximum(count, 1.0)


class AttentionPool(nn.Module):
  """Softmax-gated sum over each molecule's atoms (gate = a linear score)."""

  @nn.compact
  def __call__(self, h, node_graph, node_mask, num_graphs):
    gate = nn.Dense(1)(h)
    alpha = graph_ops.segment_softmax(gate, node_graph, num_graphs + 1, node_mask)
    return sum_pool(alpha * h, node_graph, node_mask, num_graphs)


class GRUAttentionPool(nn.Module):
  """AttentiveFP readout: a super node attends to the atoms, updated by a GRU."""
  hidden: int
  steps: int = 2
  dropout: float = 0.0

  @nn.compact
  def __call__(self, h, node_graph, node_mask, num_graphs, *, train: bool = False):
    out = nn.relu(sum_pool(h, node_graph, node_mask, num_graphs))
    project, score_atom, score_mol = nn.Dense(self.hidden), nn.Dense(1), nn.Dense(1)
    cell = nn.GRUCell(self.hidden)
    src = project(h)
    for _ in range(self.steps):
      # Segment G (padding) gets a zero state so atoms can gather their molecule's.
      padded = jnp.pad(out, ((0, 0), (0, 1), (0, 0)))
      logits = nn.leaky_relu(score_atom(src) + graph_ops.gather(score_mol(padded),
                                                                node_graph), 0.01)
      alpha = graph_ops.segment_softmax(logits, node_graph, num_graphs + 1, node_mask)
      alpha = nn.Dropout(self.dropout)(alpha, deterministic=not train)
      context = nn.elu(sum_pool(alpha * src, node_graph, node_mask, num_graphs))
      context = nn.Dropout(self.dropout)(context, deterministic=not train)
      out, _ = cell(out, context)
      out = nn.relu(out)
    return out


class MLPHead(nn.Module):
  """dropout -> [Dense -> ReLU -> dropout] x (layers - 1) -> Dense(out_dim)."""
  hidden: int
  out_dim: int
  layers: int = 2
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
    x = nn.Dropout(self.dropout)(x, deterministic=not train)
    for _ in range(self.layers - 1):
      x = nn.relu(nn.Dense(self.hidden)(x))
      x = nn.Dropout(self.dropout)(x, deterministic=not train)
    return nn.Dense(self.out_dim)(x)
