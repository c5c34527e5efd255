"""Running a fixed number of train steps from a given state (federated clients' rounds).

`run_steps` is the inner loop of a client's round: `num_steps` calls of the jitted
train step of `steps.build` on batches from an iterator, with the trainer's NaN
stop. Checkpoints, evaluation and logs are the caller's (the Flower round).
"""

from __future__ import annotations

import jax
import numpy as np

from medjax.engine import mesh as mesh_lib
from medjax.engine.train import NonFiniteLossError


def run_steps(train_step, state, batches, num_steps: int, mesh):
  """(state after `num_steps` steps, mean of each step metric over them)."""
  pending = []
  for _ in range(num_steps):
    state, metrics = train_step(state, mesh_lib.shard_batch(next(batches), mesh))
    pending.append(metrics)
  host = jax.device_get(pending)
  for offset, metrics in enumerate(host):
    if not np.isfinite(metrics["loss"]):
      raise NonFiniteLossError(f"loss is {metrics['loss']} at step {offset + 1} of "
                               f"{num_steps} local steps")
  return state, {k: float(np.mean([m[k] for m in host])) for k in host[-1]} if host else {}
