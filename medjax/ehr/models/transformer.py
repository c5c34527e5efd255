"""Transformer encoder over irregular observation times.

One token per distinct observation time: the normalised values (0 where unobserved) and
the mask, projected to `dim`, plus a learned time embedding of the continuous time in
hours (mTAN-style: one linear and `dim - 1` sinusoidal features). Padding tokens are
masked out of self-attention and of the attention pooling, whose weights per time step
are returned as `attention` for interpretation.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from medjax.ehr.models.heads import MortalityHead

_NEG = -1e9


class TimeEmbedding(nn.Module):
  dim: int
  horizon: float = 48.0

  @nn.compact
  def __call__(self, times):
    t = (times / self.horizon)[..., None]
    return jnp.concatenate([nn.Dense(1, name="linear")(t),
                            jnp.sin(nn.Dense(self.dim - 1, name="periodic")(t))], -1)


class EncoderBlock(nn.Module):
  dim: int
  heads: int
  mlp_dim: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, attention_mask, *, train=False):
    drop = lambda y: nn.Dropout(self.dropout)(y, deterministic=not train)
    y = nn.LayerNorm()(x)
    y = nn.MultiHeadDotProductAttention(self.heads, dropout_rate=self.dropout)(
        y, y, mask=attention_mask, deterministic=not train)
    x = x + drop(y)
    y = nn.Dense(self.mlp_dim)(nn.LayerNorm()(x))
    y = nn.Dense(self.dim)(drop(nn.gelu(y)))
    return x + drop(y)


class TransformerClassifier(nn.Module):
  dim: int = 64
  heads: int = 4
  layers: int = 2
  mlp_dim: int = 128
  dropout: float = 0.0

  @nn.compact
  def __call__(self, values, mask, times, token_mask, static=None, *, train=False):
    token_mask = token_mask.astype(bool)
    x = nn.Dense(self.dim, name="embed")(jnp.concatenate([values * mask, mask], -1))
    x = x + TimeEmbedding(self.dim)(times)
    attention_mask = nn.make_attention_mask(token_mask, token_mask)
    for i in range(self.layers):
      x = EncoderBlock(self.dim, self.heads, self.mlp_dim, self.dropout, name=f"block_{i}")(
          x, attention_mask, train=train)
    x = nn.LayerNorm()(x)
    scores = nn.Dense(1, name="pool")(jnp.tanh(nn.Dense(self.dim, name="pool_hidden")(x)))
    scores = jnp.where(token_mask, scores[..., 0], _NEG)
    weights = nn.softmax(scores, axis=-1) * token_mask  # all-padding stays pool to zero
    pooled = jnp.einsum("bl,bld->bd", weights, x)
    logits = MortalityHead(self.dropout)(pooled, static, train=train)
    return {"logits": logits, "attention": weights}
