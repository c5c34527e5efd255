"""Matmul and convolution FLOPs of a jitted function, counted on its jaxpr.

XLA's cost analysis counts a loop body once, so for scanned models (RNNs,
GRU-D) it undercounts by the sequence length. This walks the jaxpr instead:
`dot_general` and `conv_general_dilated` count 2 x multiply-adds, a `scan` body
counts `length` times, a `cond` its costliest branch, and nested calls (jit,
remat, custom derivatives) are entered. Elementwise work is not counted, as
usual for MFU. A `while` loop with no static trip count counts once.
"""

from __future__ import annotations

import math

import jax
from jax.extend import core as jex_core


def _dot_flops(eqn) -> int:
  lhs, rhs = (v.aval.shape for v in eqn.invars[:2])
  (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
  batch = math.prod(lhs[d] for d in lb)
  contract = math.prod(lhs[d] for d in lc)
  free_l = math.prod(s for d, s in enumerate(lhs) if d not in (*lc, *lb))
  free_r = math.prod(s for d, s in enumerate(rhs) if d not in (*rc, *rb))
  return 2 * batch * contract * free_l * free_r


def _conv_flops(eqn) -> int:
  out = eqn.outvars[0].aval.shape
  rhs = eqn.invars[1].aval.shape
  spec = eqn.params["dimension_numbers"].rhs_spec  # (out feature, in feature, *spatial)
  per_output = math.prod(rhs[d] for d in spec[1:])  # in features / groups x window
  return 2 * math.prod(out) * per_output


def _sub_jaxprs(params):
  for value in params.values():
    for item in value if isinstance(value, (tuple, list)) else (value,):
      if isinstance(item, jex_core.ClosedJaxpr):
        yield item.jaxpr
      elif isinstance(item, jex_core.Jaxpr):
        yield item


def jaxpr_flops(jaxpr) -> int:
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      total += _dot_flops(eqn)
    elif name == "conv_general_dilated":
      total += _conv_flops(eqn)
    elif name == "scan":
      total += eqn.params["length"] * jaxpr_flops(eqn.params["jaxpr"].jaxpr)
    elif name == "cond":
      total += max(jaxpr_flops(b.jaxpr) for b in eqn.params["branches"])
    else:
      total += sum(jaxpr_flops(sub) for sub in _sub_jaxprs(eqn.params))
  return total


def count(fn, *args) -> int:
  """FLOPs of one call of `fn(*args)` (arrays or ShapeDtypeStructs)."""
  return jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)
