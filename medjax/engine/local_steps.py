"""Running a fixed number of train steps from a given state (federated clients' rounds).

`run_steps` is the inner loop of a client's round: `num_steps` calls of the jitted
train step of `steps.build` on batches from an iterator, with the trainer's NaN
stop. Checkpoints, evaluation and logs are the caller's (the Flower round).
"""

from __future__ import annotations

import jax

from medjax.engine import mesh as mesh_lib
from medjax.engine import train


def run_steps(train_step, state, batches, num_steps: int, mesh):
  """(state after `num_steps` steps, mean of each step metric over them)."""
  pending = []
  for _ in range(num_steps):
    state, metrics = train_step(state, mesh_lib.shard_batch(next(batches), mesh))
    pending.append(metrics)
  host = jax.device_get(pending)
  offset = train.first_nonfinite(host)
  if offset is not None:
    raise train.NonFiniteLossError(f"loss is {host[offset]['loss']} at step {offset + 1} "
                                   f"of {num_steps} local steps")
  return state, train.mean_metrics(host)
