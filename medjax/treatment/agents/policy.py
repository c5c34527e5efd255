"""Action spaces and the policy distributions PPO samples from.

`Discrete(n)`: a categorical over n actions; the network outputs logits (..., n).
`Box(low, high)`: a diagonal Gaussian over a pre-squash value u (..., d), mapped to
the env's range by `squash`: "tanh" (low + (tanh(u) + 1) / 2 * (high - low)) or
"clip" (the same affine map of clip(u, -1, 1)). The network outputs (mean, log_std).

PPO stores the *raw* action (the index, or u before squashing): the ratio of two
policies' probabilities of u equals that of the squashed action, since the tanh
Jacobian depends on u only and cancels, so no change-of-variables term is needed.
The entropy reported for a Box is the Gaussian's (of u).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from medjax.engine.errors import InputError

SQUASHES = ("tanh", "clip")


@dataclasses.dataclass(frozen=True)
class Discrete:
  num_actions: int


@dataclasses.dataclass(frozen=True)
class Box:
  low: tuple[float, ...]
  high: tuple[float, ...]
  squash: str = "tanh"

  def __post_init__(self):
    if len(self.low) != len(self.high) or not self.low:
      raise InputError(f"Box low {self.low} and high {self.high} need the same, "
                       "non-zero length")
    if any(h <= lo for lo, h in zip(self.low, self.high)):
      raise InputError(f"Box needs low < high, got low {self.low}, high {self.high}")
    if self.squash not in SQUASHES:
      raise InputError(f"unknown squash {self.squash!r} ({' | '.join(SQUASHES)})")

  @property
  def dim(self) -> int:
    return len(self.low)


ActionSpace = Discrete | Box


def log_prob(space: ActionSpace, dist, raw) -> jax.Array:
  """log pi(raw) under `dist` (logits, or (mean, log_std)); sums over Box dims."""
  if isinstance(space, Discrete):
    logp = jax.nn.log_softmax(dist, axis=-1)
    return jnp.take_along_axis(logp, raw[..., None].astype(jnp.int32), -1)[..., 0]
  mean, log_std = dist
  z = (raw - mean) * jnp.exp(-log_std)
  return jnp.sum(-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi), axis=-1)


def entropy(space: ActionSpace, dist) -> jax.Array:
  if isinstance(space, Discrete):
    logp = jax.nn.log_softmax(dist, axis=-1)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)
  mean, log_std = dist
  log_std = jnp.broadcast_to(log_std, mean.shape)
  return jnp.sum(log_std + 0.5 * math.log(2 * math.pi * math.e), axis=-1)


def sample(space: ActionSpace, dist, key) -> tuple[jax.Array, jax.Array]:
  """(raw action, its log-probability)."""
  if isinstance(space, Discrete):
    raw = jax.random.categorical(key, dist, axis=-1).astype(jnp.int32)
  else:
    mean, log_std = dist
    raw = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
  return raw, log_prob(space, dist, raw)


def mode(space: ActionSpace, dist) -> jax.Array:
  """The most likely raw action (for deterministic evaluation)."""
  if isinstance(space, Discrete):
    return jnp.argmax(dist, axis=-1).astype(jnp.int32)
  return dist[0]


def to_env(space: ActionSpace, raw) -> jax.Array:
  """The action the env receives: the index, or u squashed into [low, high]."""
  if isinstance(space, Discrete):
    return raw
  unit = jnp.tanh(raw) if space.squash == "tanh" else jnp.clip(raw, -1.0, 1.0)
  low, high = jnp.asarray(space.low), jnp.asarray(space.high)
  return low + (unit + 1.0) * 0.5 * (high - low)
