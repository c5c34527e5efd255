"""Device mesh, batch sharding and parameter sharding rules.

Axes: `data` (batch split, parameters replicated) and `fsdp` (batch split too,
and parameters sharded as `medjax.engine.partitioning`'s logical-axis rules say).
Batches are always split over both axes on their leading (example) dimension.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from medjax.engine.errors import InputError

BATCH_AXES = ("data", "fsdp")


def make_mesh(mesh_config: Mapping[str, int], devices=None) -> Mesh:
  """Builds a ("data", "fsdp") mesh; one axis may be -1 (all remaining devices)."""
  if devices is None:  # process-major: each process owns a contiguous block of rows
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
  devices = np.asarray(devices)
  sizes = {axis: int(mesh_config.get(axis, 1)) for axis in BATCH_AXES}
  unknown = set(mesh_config) - set(BATCH_AXES)
  if unknown:
    raise InputError(f"config.mesh: unknown axes {sorted(unknown)}; known: {BATCH_AXES}")
  if list(sizes.values()).count(-1) > 1:
    raise InputError("config.mesh: at most one axis may be -1")
  fixed = int(np.prod([s for s in sizes.values() if s != -1]))
  for axis, size in sizes.items():
    if size == -1:
      sizes[axis] = devices.size // fixed
  if int(np.prod(list(sizes.values()))) != devices.size:
    raise InputError(f"config.mesh {dict(mesh_config)} does not fit {devices.size} devices")
  return Mesh(devices.reshape(tuple(sizes.values())), BATCH_AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_divisor(mesh: Mesh) -> int:
  """Global batch sizes must be multiples of this."""
  return mesh.shape["data"] * mesh.shape["fsdp"]


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """This process's rows of a batch -> global arrays split over the batch axes."""
  sharding = batch_sharding(mesh)
  arrays = {k: np.asarray(v) for k, v in batch.items() if _is_numeric(v)}
  if jax.process_count() == 1:  # one transfer call for all arrays: less host time a step
    return jax.device_put(arrays, sharding)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in arrays.items()}


def _is_numeric(value) -> bool:
  return np.asarray(value).dtype.kind in "biuf"
