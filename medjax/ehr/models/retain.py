"""RETAIN (Choi et al., NeurIPS 2016): reverse-time two-level attention over visits.

Visit embedding v_j = sum of the embeddings of its codes (linear, as in the paper). Two
GRUs read the visits from the most recent backwards; alpha (one weight per visit, softmax
over visits) and beta (one gate per embedding dimension) weight the context
c = sum_j alpha_j beta_j * v_j, and logit = w . c + b. The logit then decomposes exactly
into per-code contributions alpha_j w . (beta_j * emb(code)) (+ b), returned as
`code_contributions` together with `visit_attention` (alpha).
Inputs: `codes` (B, visits, codes) int with 0 = padding, `visit_mask` (B, visits), and
`visit_times` (B, visits) in days since the first visit (an extra GRU input).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

_NEG = -1e9


class RETAIN(nn.Module):
  vocab_size: int
  embed_dim: int = 64
  hidden: int = 64
  dropout: float = 0.0

  @nn.compact
  def __call__(self, codes, visit_mask, visit_times, *, train=False):
    visit_mask = visit_mask.astype(bool)
    valid = (codes > 0)[..., None]
    code_emb = nn.Embed(self.vocab_size, self.embed_dim, name="embed")(codes) * valid
    v = code_emb.sum(-2)  # (B, visits, E)
    drop = lambda y: nn.Dropout(self.dropout)(y, deterministic=not train)
    rnn_in = jnp.concatenate([drop(v), jnp.log1p(jnp.maximum(visit_times, 0))[..., None]], -1)
    lengths = visit_mask.sum(-1)
    rnn = lambda name: nn.RNN(nn.GRUCell(self.hidden), reverse=True, keep_order=True,
                              name=name)(rnn_in, seq_lengths=lengths)
    e = nn.Dense(1, name="alpha")(rnn("rnn_alpha"))[..., 0]
    alpha = nn.softmax(jnp.where(visit_mask, e, _NEG), axis=-1) * visit_mask
    beta = jnp.tanh(nn.Dense(self.embed_dim, name="beta")(rnn("rnn_beta")))
    context = jnp.einsum("bv,bve->be", alpha, beta * v)
    out = nn.Dense(1, name="logit")
    logits = out(drop(context))[..., 0]
    w = out.variables["params"]["kernel"][:, 0]
    contributions = jnp.einsum("bv,bve,bvce->bvc", alpha, beta * w, code_emb)
    return {"logits": logits, "visit_attention": alpha, "code_contributions": contributions}
