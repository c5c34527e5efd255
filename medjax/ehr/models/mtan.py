"""mTAN (Shukla & Marlin, "Multi-Time Attention Networks for Irregularly Sampled Time
Series", ICLR 2021): the classifier mTAND-Enc.

A learned time embedding phi(t) (one linear and `embed_time - 1` sinusoidal features of
t / horizon) is shared by K fixed reference times r_k, evenly spaced over the horizon,
and the observation times t_l. Per head h,
  s_hkl = <W_q phi(r_k), W_k phi(t_l)>_h / sqrt(embed_time / heads)
and each variable v is attended separately, over its own observations only:
  a_hkv = sum_l softmax_l(s_hkl over l with m_lv = 1) [x_lv, m_lv]
(0 for a variable never observed). The [values, mask] summaries of all heads are
projected to `hidden` per reference time, a GRU runs over the K reference times, and an
MLP (2 x `classifier_hidden`, ReLU) and the shared head give the logit. Padding tokens
(`token_mask` 0) and unobserved entries carry no weight, so the output depends only on
the set of observed (time, variable, value) triples, not on their order.

The softmax is shifted per (head, reference time, variable) by that variable's largest
observed score, so it stays exact however far apart the scores grow (one shift for all
variables underflows and gave NaN losses in training); this builds (B, H, K, L, V)
arrays, as the paper's implementation does.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from medjax.engine.errors import InputError
from medjax.ehr.models.heads import MortalityHead
from medjax.ehr.models.transformer import TimeEmbedding


def masked_time_attention(scores, values, observed):
  """Per-variable masked softmax over tokens, applied to [values, mask].

  scores (B, H, K, L), values and observed (B, L, V) -> (summaries (B, H, K, 2V),
  token attention (B, L): the weight each token gets, averaged over heads, reference
  times and the stay's observed variables; it sums to 1 over tokens, or is all 0).
  """
  obs = (observed > 0)[:, None, None]  # (B, 1, 1, L, V)
  masked = jnp.where(obs, scores[..., None], -jnp.inf)  # (B, H, K, L, V)
  shift = jnp.max(masked, axis=3, keepdims=True)
  shift = jax.lax.stop_gradient(jnp.where(jnp.isfinite(shift), shift, 0.0))
  e = jnp.exp(masked - shift)  # 0 where unobserved
  den = e.sum(3)  # >= 1 for an observed variable (its largest score gives exp(0))
  weights = e / jnp.maximum(den, 1.0)[:, :, :, None]
  x = jnp.where(observed > 0, values, 0).astype(scores.dtype)
  summaries = jnp.concatenate([jnp.einsum("bhklv,blv->bhkv", weights, x),
                               (den > 0).astype(scores.dtype)], -1)
  num_vars = jnp.maximum(jnp.any(observed > 0, 1).sum(-1), 1)  # (B,)
  heads, refs = scores.shape[1:3]
  per_token = weights.sum((1, 2, 4)) / (heads * refs * num_vars)[:, None]
  return summaries, per_token


class MultiTimeAttention(nn.Module):
  """Reference-time queries over observation-time keys, per variable (see module doc)."""
  embed_time: int = 128
  heads: int = 1
  features: int = 128

  @nn.compact
  def __call__(self, query_embedding, key_embedding, values, observed):
    """query_embedding (K, E), key_embedding (B, L, E), values / observed (B, L, V)
    -> ((B, K, features), token attention (B, L))."""
    if self.embed_time % self.heads:
      raise InputError(f"task.embed_time={self.embed_time} is not a multiple of "
                       f"task.heads={self.heads} (mtan splits the time embedding by head)")
    d = self.embed_time // self.heads
    q = nn.Dense(self.embed_time, name="time_query")(query_embedding)
    k = nn.Dense(self.embed_time, name="time_key")(key_embedding)
    q = q.reshape(q.shape[0], self.heads, d)
    k = k.reshape(k.shape[:2] + (self.heads, d))
    scores = jnp.einsum("khd,blhd->bhkl", q, k) / jnp.sqrt(jnp.float32(d)).astype(q.dtype)
    summaries, attention = masked_time_attention(scores, values, observed)
    batch, _, refs, channels = summaries.shape
    x = summaries.transpose(0, 2, 1, 3).reshape(batch, refs, self.heads * channels)
    return nn.Dense(self.features, name="output")(x.astype(values.dtype)), attention


class MTAN(nn.Module):
  """mTAND-Enc on the `tokens` inputs; returns `logits` and per-token `attention`."""
  hidden: int = 128
  ref_points: int = 128
  embed_time: int = 128
  heads: int = 1
  classifier_hidden: int = 300
  dropout: float = 0.0
  horizon: float = 48.0  # hours: times and reference points are divided by it

  @nn.compact
  def __call__(self, values, mask, times, token_mask, static=None, *, train=False):
    observed = mask * token_mask[..., None]
    embed = TimeEmbedding(self.embed_time, self.horizon, name="time_embedding")
    reference = jnp.linspace(0.0, self.horizon, self.ref_points, dtype=jnp.float32)
    x, attention = MultiTimeAttention(self.embed_time, self.heads, self.hidden,
                                      name="attention")(
        embed(reference), embed(times.astype(jnp.float32)), values, observed)
    h, _ = nn.RNN(nn.GRUCell(self.hidden), return_carry=True, name="gru")(x)
    for i in range(2):
      h = nn.relu(nn.Dense(self.classifier_hidden, name=f"classifier_{i}")(h))
    return {"logits": MortalityHead(self.dropout)(h, static, train=train),
            "attention": attention}
