"""Parameter and optimiser-state sharding by logical-axis rules.

Every parameter dimension gets a logical name from the layer convention it
follows (Flax's own parameter layouts), so the rules cover every model in
medjax, and any new Flax model, with no annotations:

  Dense / Conv kernel     (*window, in, out)   e.g. (3, 3, 16, 32) or (64, 128)
  attention q/k/v kernel  (embed, heads, head_dim)
  attention out kernel    (heads, head_dim, embed)
  Embed table             (vocab, embed)
  bias, norm scale, other vectors (vector,)

`config.logical_axis_rules` maps logical names to mesh axes, in priority order
(like `flax.linen.logical_axis_rules`): each rule shards the first dimension
with that name whose size the mesh axis divides, if the mesh axis is still free
for this array. With the default rules a kernel is split over `fsdp` along its
output features, else its input features; vectors stay replicated. Optimiser
state (Adam's moments) has the parameters' paths, so it is sharded alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

Rules = Sequence[tuple[str, str | None]]  # (logical axis, mesh axis or None)

DEFAULT_RULES = (("out", "fsdp"), ("embed", "fsdp"), ("vocab", "fsdp"), ("in", "fsdp"),
                 ("heads", "fsdp"))
LOGICAL_AXES = ("window", "in", "out", "embed", "heads", "head_dim", "vocab", "vector")
_ATTENTION_INPUTS = {"query", "key", "value"}


def logical_axes(path: str, ndim: int) -> tuple[str | None, ...]:
  """Logical names of the dimensions of the array at "/"-joined `path`."""
  parts = path.split("/")
  name, module = parts[-1], (parts[-2] if len(parts) > 1 else "")
  if ndim == 0:
    return ()
  if name == "embedding" and ndim == 2:
    return ("vocab", "embed")
  if ndim == 3 and module in _ATTENTION_INPUTS and name == "kernel":
    return ("embed", "heads", "head_dim")
  if ndim == 3 and module == "out" and name == "kernel":
    return ("heads", "head_dim", "embed")
  if ndim == 2 and module in _ATTENTION_INPUTS and name == "bias":
    return ("heads", "head_dim")
  if ndim == 1:
    return ("vector",)
  return ("window",) * (ndim - 2) + ("in", "out")  # Dense, Conv and similar kernels


def partition_spec(axes: Sequence[str | None], shape: Sequence[int], mesh: Mesh,
                   rules: Rules) -> P:
  """The PartitionSpec the rules give an array with logical `axes` and `shape`."""
  spec: list[str | None] = [None] * len(shape)
  for logical, mesh_axis in rules:
    if logical not in LOGICAL_AXES:
      raise ValueError(f"logical axis rule {(logical, mesh_axis)!r}: unknown logical axis "
                       f"{logical!r}; known: {LOGICAL_AXES}")
    if mesh_axis is None or mesh_axis in spec:
      continue
    if mesh_axis not in mesh.shape:
      raise ValueError(f"logical axis rule {(logical, mesh_axis)!r}: the mesh has no axis "
                       f"{mesh_axis!r}; its axes: {tuple(mesh.shape)}")
    size = mesh.shape[mesh_axis]
    if size == 1:
      continue
    for dim, name in enumerate(axes):
      if name == logical and spec[dim] is None and shape[dim] % size == 0:
        spec[dim] = mesh_axis
        break
  return P(*spec)


def path_str(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k))))
                  for k in path)


def tree_shardings(tree, mesh: Mesh, rules: Rules = DEFAULT_RULES):
  """NamedShardings for a pytree of arrays (or ShapeDtypeStructs) by the rules."""
  def sharding(path, leaf):
    shape = tuple(getattr(leaf, "shape", ()))
    axes = logical_axes(path_str(path), len(shape))
    return NamedSharding(mesh, partition_spec(axes, shape, mesh, rules))
  return jax.tree_util.tree_map_with_path(sharding, tree)


def describe(tree, rules: Rules = DEFAULT_RULES, mesh: Mesh | None = None) -> list[str]:
  """One line per array: path, shape, logical axes (and the spec on `mesh`)."""
  lines = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    name, shape = path_str(path), tuple(leaf.shape)
    axes = logical_axes(name, len(shape))
    spec = f" -> {partition_spec(axes, shape, mesh, rules)}" if mesh is not None else ""
    lines.append(f"{name} {shape} {axes}{spec}")
  return lines

