"""Device mesh, batch sharding and parameter sharding rules.

Axes: `data` (batch split, parameters replicated) and `fsdp` (batch split too,
and parameters sharded along their largest divisible dimension). Batches are
always split over both axes on their leading (example) dimension.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

BATCH_AXES = ("data", "fsdp")


def make_mesh(mesh_config: Mapping[str, int], devices=None) -> Mesh:
  """Builds a ("data", "fsdp") mesh; one axis may be -1 (all remaining devices)."""
  devices = np.asarray(devices if devices is not None else jax.devices())
  sizes = {axis: int(mesh_config.get(axis, 1)) for axis in BATCH_AXES}
  unknown = set(mesh_config) - set(BATCH_AXES)
  if unknown:
    raise ValueError(f"config.mesh: unknown axes {sorted(unknown)}; known: {BATCH_AXES}")
  if list(sizes.values()).count(-1) > 1:
    raise ValueError("config.mesh: at most one axis may be -1")
  fixed = int(np.prod([s for s in sizes.values() if s != -1]))
  for axis, size in sizes.items():
    if size == -1:
      sizes[axis] = devices.size // fixed
  if int(np.prod(list(sizes.values()))) != devices.size:
    raise ValueError(f"config.mesh {dict(mesh_config)} does not fit {devices.size} devices")
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
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items() if _is_numeric(v)}


def local_rows(tree):
  """Global arrays split on the leading axis -> this process's rows, as numpy."""
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, tree)
  return jax.tree.map(lambda x: multihost_utils.global_array_to_host_local_array(
      x, x.sharding.mesh, P(BATCH_AXES)), tree)


def _is_numeric(value) -> bool:
  return np.asarray(value).dtype.kind in "biuf"


# --- parameter sharding rules --------------------------------------------------

Rule = tuple[str, str]  # (regex over the "/"-joined parameter path, "replicate" | "fsdp")


def _fsdp_spec(shape: Sequence[int], size: int) -> P:
  """Shards the largest dimension divisible by `size`; replicates if none is."""
  if size == 1:
    return P()
  for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
    if shape[dim] % size == 0 and shape[dim] >= size:
      spec = [None] * len(shape)
      spec[dim] = "fsdp"
      return P(*spec)
  return P()


def tree_shardings(tree, mesh: Mesh, rules: Sequence[Rule] = ((".*", "fsdp"),)):
  """Shardings for a pytree of arrays (or ShapeDtypeStructs) by path rules.

  The first rule whose regex matches the path decides. With an fsdp axis of size 1
  "fsdp" means replicated, so the default rule is right for every model.
  """
  def spec_for(path, leaf):
    name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
    for pattern, kind in rules:
      if re.fullmatch(pattern, name):
        if kind == "replicate":
          return NamedSharding(mesh, P())
        if kind == "fsdp":
          return NamedSharding(mesh, _fsdp_spec(np.shape(leaf), mesh.shape["fsdp"]))
        raise ValueError(f"sharding rule {pattern!r}: unknown kind {kind!r}")
    return NamedSharding(mesh, P())
  return jax.tree_util.tree_map_with_path(spec_for, tree)
