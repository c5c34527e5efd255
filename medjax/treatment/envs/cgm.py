"""CGM sensor noise as in simglucose: Johnson-SU transformed AR(1), 15-min grid.

simglucose draws e_0 ~ N(0, 1), e_k = PACF * (e_{k-1} + N(0, 1)) every 15 minutes,
maps each through the Johnson-SU transform xi + lambda * sinh((e - gamma) / delta),
and fills the sensor's sample times with a cubic spline through blocks of 11 grid
points (the last point of a block starts the next). The spline is a fixed linear
map: sample i of a block is `interp_matrix(sample_time)[i] @ grid`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import interpolate

from medjax.engine.errors import InputError
from medjax.treatment.envs.params import SensorParams

GRID_MINUTES = 15
GRID_POINTS = 10  # new grid points per block (simglucose's PRECOMPUTE)


class NoiseState(NamedTuple):
  e: jax.Array  # latent AR(1) value at the block's last grid point
  grid: jax.Array  # (GRID_POINTS + 1,) the block's transformed grid noise
  index: jax.Array  # next sample time of the block (n: block used up)
  pending: jax.Array  # (GRID_POINTS,) normals gathered for the next block


@functools.cache
def interp_matrix(sample_time: int) -> np.ndarray:
  """(n, 11) cubic-spline weights from the grid to the sample times of a block."""
  t15 = np.arange(GRID_POINTS + 1) * GRID_MINUTES
  n = GRID_POINTS * GRID_MINUTES // sample_time + 1
  t = np.arange(n) * sample_time
  spline = interpolate.interp1d(t15, np.eye(GRID_POINTS + 1), kind="cubic", axis=0)
  return np.asarray(spline(t)[1:], np.float32)


def johnson_su(e, s: SensorParams):
  return s.xi + s.lam * jnp.sinh((e - s.gamma) / s.delta)


def _ar_weights(pacf: float):
  """(GRID_POINTS,), (GRID_POINTS, GRID_POINTS): e_k = a_k e_0 + sum_j L_kj z_j."""
  k = np.arange(1, GRID_POINTS + 1)
  lag = k[:, None] - k[None, :]
  lower = np.where(lag >= 0, float(pacf) ** (lag + 1.0), 0.0)
  return (float(pacf) ** k).astype(np.float32), lower.astype(np.float32)


def block_grid(e, grid_last, normals, s: SensorParams):
  """(latent e, grid) of the next block from GRID_POINTS standard normals."""
  decay, lower = (jnp.asarray(w, normals.dtype) for w in _ar_weights(s.PACF))
  es = decay * e + lower @ normals  # the AR(1) recursion, unrolled
  return es[-1], jnp.concatenate([grid_last[None], johnson_su(es, s)])


def init_noise(first_normal, normals, s: SensorParams) -> NoiseState:
  """State after simglucose's `CGMNoise(params)` followed by its first block."""
  e0 = jnp.asarray(first_normal)
  e, grid = block_grid(e0, johnson_su(e0, s), normals, s)
  return NoiseState(e, grid, jnp.zeros((), jnp.int32), jnp.zeros_like(normals))


def next_noise(state: NoiseState, normal, s: SensorParams):
  """(noise, state) for one sample; takes one fresh standard normal per sample.

  The normal goes into slot index % GRID_POINTS of `pending`; a block of n >=
  GRID_POINTS samples rewrites every slot before the next block is due, so each
  block starts from GRID_POINTS unused normals while only one is drawn per
  sample (drawing ten per sample cost more than the ODE).
  """
  weights = jnp.asarray(interp_matrix(s.sample_time), state.grid.dtype)
  pending = state.pending.at[state.index % GRID_POINTS].set(normal)
  due = state.index >= weights.shape[0]
  e, grid = block_grid(state.e, state.grid[-1], pending, s)
  e, grid = jnp.where(due, e, state.e), jnp.where(due, grid, state.grid)
  index = jnp.where(due, 0, state.index)
  return weights[index] @ grid, NoiseState(e, grid, index + 1, pending)


def random_noise(key, s: SensorParams) -> NoiseState:
  if interp_matrix(s.sample_time).shape[0] < GRID_POINTS:
    raise InputError(f"a CGM sample time of {s.sample_time} min is over "
                     f"{GRID_MINUTES} min, which this noise model does not support")
  k0, k1 = jax.random.split(key)
  return init_noise(jax.random.normal(k0), jax.random.normal(k1, (GRID_POINTS,)), s)
