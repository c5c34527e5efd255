"""GRU and LSTM mortality classifiers on binned series ("GRU-simple" inputs).

Each step sees the normalised values (0 where unobserved), the observation mask and the
scaled time since the last observation, as in Che et al.'s GRU-simple baseline. With
`lengths`, steps past a sequence's length are ignored (its last valid state is used).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from medjax.ehr.models.heads import MortalityHead
from medjax.engine.errors import InputError


class RNNClassifier(nn.Module):
  cell: str = "gru"  # gru | lstm
  hidden: int = 64
  layers: int = 1
  dropout: float = 0.0
  delta_scale: float = 1.0 / 48.0

  def _cell(self, i: int):
    if self.cell == "gru":
      return nn.GRUCell(self.hidden, name=f"gru_{i}")
    if self.cell == "lstm":
      return nn.OptimizedLSTMCell(self.hidden, name=f"lstm_{i}")
    raise InputError(f"unknown cell {self.cell!r} (gru | lstm)")

  @nn.compact
  def __call__(self, values, mask, delta, static=None, lengths=None, *, train=False):
    x = jnp.concatenate([values * mask, mask, delta * self.delta_scale], -1)
    carry = None
    for i in range(self.layers):
      if i:
        x = nn.Dropout(self.dropout)(x, deterministic=not train)
      carry, x = nn.RNN(self._cell(i), return_carry=True)(x, seq_lengths=lengths)
    summary = carry if self.cell == "gru" else carry[1]  # LSTM carry is (c, h)
    return {"logits": MortalityHead(self.dropout)(summary, static, train=train)}
