"""Actor-critic MLPs for PPO: separate policy and value torsos.

`ActorCritic(space)(obs)` -> (dist, value): `dist` is logits (..., n) for a
`Discrete` space, or (mean, log_std) (..., d) for a `Box` (log_std a learned,
state-independent vector). Orthogonal initialisation as in the PPO reference
implementations: gain sqrt(2) for hidden layers, 0.01 for the policy head, 1 for
the value head, zero biases.
"""

from __future__ import annotations

from collections.abc import Sequence
import math

import flax.linen as nn
import jax.numpy as jnp

from medjax.engine.errors import InputError
from medjax.treatment.agents.policy import ActionSpace, Discrete

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu}


def _dense(features: int, gain: float, name: str) -> nn.Dense:
  return nn.Dense(features, kernel_init=nn.initializers.orthogonal(gain),
                  bias_init=nn.initializers.zeros, name=name)


class MLP(nn.Module):
  """`num_states` > 0: x is an int state index and the first layer is the dense layer
  of its one-hot vector, computed as a row lookup (no S-wide matmul)."""
  hidden: Sequence[int]
  activation: str = "tanh"
  num_states: int = 0

  @nn.compact
  def __call__(self, x):
    if self.activation not in ACTIVATIONS:
      raise InputError(f"unknown activation {self.activation!r} "
                       f"({' | '.join(ACTIVATIONS)})")
    act = ACTIVATIONS[self.activation]
    for i, width in enumerate(self.hidden):
      if i == 0 and self.num_states:
        kernel = self.param("dense_0_kernel", nn.initializers.orthogonal(math.sqrt(2.0)),
                            (self.num_states, width))
        bias = self.param("dense_0_bias", nn.initializers.zeros, (width,))
        x = act(kernel[x.astype(jnp.int32)] + bias)
        continue
      x = act(_dense(width, math.sqrt(2.0), f"dense_{i}")(x))
    return x


class ActorCritic(nn.Module):
  """Policy distribution parameters and state value for a batch of observations."""
  space: ActionSpace
  hidden: Sequence[int] = (64, 64)
  activation: str = "tanh"
  log_std_init: float = -0.5
  num_states: int = 0  # > 0: obs are int state indices (see MLP)

  @nn.compact
  def __call__(self, obs, train: bool = False):
    del train  # no dropout or batch statistics; the engine's init and apply pass it
    if not self.num_states:
      obs = obs.astype(jnp.float32)
    actor = MLP(self.hidden, self.activation, self.num_states, name="actor")(obs)
    critic = MLP(self.hidden, self.activation, self.num_states, name="critic")(obs)
    value = _dense(1, 1.0, "value")(critic)[..., 0]
    if isinstance(self.space, Discrete):
      return _dense(self.space.num_actions, 0.01, "logits")(actor), value
    mean = _dense(self.space.dim, 0.01, "mean")(actor)
    log_std = self.param("log_std", nn.initializers.constant(self.log_std_init),
                         (self.space.dim,))
    return (mean, jnp.broadcast_to(log_std, mean.shape)), value
