"""Meal scenarios: announced carbohydrate (g) at whole minutes after the start.

A `Scenario` is a fixed-size array of meals (padding has time -1), so scenarios
batch and vmap. `custom` mirrors simglucose's CustomScenario (times in hours
from the start, rounded to minutes); `random` follows simglucose's
RandomScenario: each day, six meals (breakfast, snack, lunch, snack, dinner,
snack) each taken with its probability, at a truncated-normal time of day, with
a rounded normal amount. Days start at midnight; `start_hour` is the episode's
clock time at t = 0, so meals before it on the first day are never eaten.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PROB = (0.95, 0.3, 0.95, 0.3, 0.95, 0.3)
TIME_LB = (5 * 60, 9 * 60, 10 * 60, 14 * 60, 16 * 60, 20 * 60)
TIME_UB = (9 * 60, 10 * 60, 14 * 60, 16 * 60, 20 * 60, 23 * 60)
TIME_MU = (7 * 60, 9.5 * 60, 12 * 60, 15 * 60, 18 * 60, 21.5 * 60)
TIME_SIGMA = (60, 30, 60, 30, 60, 30)
AMOUNT_MU = (45, 10, 70, 10, 80, 10)
AMOUNT_SIGMA = (10, 5, 10, 5, 10, 5)


class Scenario(NamedTuple):
  time: jax.Array  # (M,) int32 minutes after the start; -1 marks padding
  amount: jax.Array  # (M,) float32 grams of carbohydrate


def custom(meals, size: int | None = None) -> Scenario:
  """From [(hours after start, grams), ...], padded to `size` meals."""
  size = len(meals) if size is None else size
  if len(meals) > size:
    raise ValueError(f"{len(meals)} meals do not fit in a scenario of {size}")
  time = np.full(size, -1, np.int32)
  amount = np.zeros(size, np.float32)
  for i, (hours, grams) in enumerate(meals):
    time[i] = round(hours * 60.0)
    amount[i] = grams
  return Scenario(jnp.asarray(time), jnp.asarray(amount))


def meal_at(scenario: Scenario, t):
  """Grams announced at minute t (0 when none)."""
  return jnp.sum(jnp.where(scenario.time == t, scenario.amount, 0.0))


def random(key, days: int = 1, start_hour=0) -> Scenario:
  """A RandomScenario sample covering `days` calendar days from midnight."""
  kp, kt, ka = jax.random.split(key, 3)
  shape = (days, len(PROB))
  taken = jax.random.uniform(kp, shape) < jnp.asarray(PROB)
  mu, sd = jnp.asarray(TIME_MU), jnp.asarray(TIME_SIGMA, jnp.float32)
  z = jax.random.truncated_normal(kt, (jnp.asarray(TIME_LB) - mu) / sd,
                                  (jnp.asarray(TIME_UB) - mu) / sd, shape)
  clock = jnp.round(mu + sd * z) + 1440.0 * jnp.arange(days)[:, None]
  grams = jnp.round(jnp.asarray(AMOUNT_MU) + jnp.asarray(AMOUNT_SIGMA)
                    * jax.random.normal(ka, shape))
  time = (clock - 60.0 * start_hour).astype(jnp.int32)
  keep = taken & (time >= 0)
  return Scenario(jnp.where(keep, time, -1).ravel(),
                  jnp.where(keep, jnp.maximum(grams, 0.0), 0.0).ravel())
