"""GRU-D (Che et al., "Recurrent Neural Networks for Multivariate Time Series with
Missing Values", Sci Rep 2018): a GRU whose inputs decay towards the empirical mean and
whose hidden state decays with the time since each variable was last observed.

For every step t, with x the values, m the mask and delta the time since last seen:
  gamma_x = exp(-max(0, w_x * delta + b_x))          (diagonal, per variable)
  gamma_h = exp(-max(0, W_h delta + b_h))
  x_hat   = m x + (1 - m) (gamma_x x_last + (1 - gamma_x) x_mean)
  h_hat   = gamma_h h
  z = sigmoid(W_z x_hat + U_z h_hat + V_z m + b_z);  r likewise
  h_tilde = tanh(W x_hat + U (r h_hat) + V m + b);  h = (1 - z) h_hat + z h_tilde
x_last is the last observed value (x_mean before the first). Inputs are normalised with
training statistics, so the empirical mean x_mean is 0.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from medjax.ehr.models.heads import MortalityHead


class GRUDCell(nn.RNNCellBase):
  """Carry `(h, x_last)`; inputs per step are `[x, m, delta]` concatenated (3V)."""
  features: int
  num_vars: int

  @nn.compact
  def __call__(self, carry, inputs):
    h, x_last = carry
    x, m, delta = jnp.split(inputs, 3, axis=-1)
    # Small positive decay rates at init (per hour), so the ReLUs start active.
    w_x = self.param("decay_x_w", nn.initializers.constant(0.05), (self.num_vars,))
    b_x = self.param("decay_x_b", nn.initializers.zeros, (self.num_vars,))
    gamma_x = jnp.exp(-jax.nn.relu(w_x * delta + b_x))
    gamma_h = jnp.exp(-jax.nn.relu(nn.Dense(
        self.features, kernel_init=nn.initializers.uniform(0.05 / self.num_vars),
        name="decay_h")(delta)))
    x_hat = m * x + (1 - m) * gamma_x * x_last  # + (1 - gamma_x) * x_mean, x_mean = 0
    h_hat = gamma_h * h
    gates_in = nn.Dense(3 * self.features, name="input")(jnp.concatenate([x_hat, m], -1))
    in_z, in_r, in_n = jnp.split(gates_in, 3, axis=-1)
    hid_z, hid_r = jnp.split(nn.Dense(2 * self.features, use_bias=False, name="hidden_zr")(
        h_hat), 2, axis=-1)
    z = jax.nn.sigmoid(in_z + hid_z)
    r = jax.nn.sigmoid(in_r + hid_r)
    n = jnp.tanh(in_n + nn.Dense(self.features, use_bias=False, name="hidden_n")(r * h_hat))
    new_h = (1 - z) * h_hat + z * n
    return (new_h, m * x + (1 - m) * x_last), new_h

  @nn.nowrap
  def initialize_carry(self, rng, input_shape):
    del rng
    batch = input_shape[:-1]
    return (jnp.zeros(batch + (self.features,)), jnp.zeros(batch + (self.num_vars,)))

  @property
  def num_feature_axes(self) -> int:
    return 1


class GRUD(nn.Module):
  hidden: int = 64
  dropout: float = 0.0

  @nn.compact
  def __call__(self, values, mask, delta, static=None, lengths=None, *, train=False):
    x = jnp.concatenate([values * mask, mask, delta], -1)
    cell = GRUDCell(self.hidden, values.shape[-1], name="cell")
    (h, _), _ = nn.RNN(cell, return_carry=True)(x, seq_lengths=lengths)
    return {"logits": MortalityHead(self.dropout)(h, static, train=train)}
