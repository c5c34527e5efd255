"""Throughput of a task's model through the shared engine's jitted steps (sequences/s).

Times the engine's own train step (forward, backward, optimiser update) and predict
function on `repeats` batches after one compiling call, on the current devices.
"""

from __future__ import annotations

import time

import jax

from medjax.engine import mesh as mesh_lib
from medjax.engine import steps


def throughput(config, task, batch_size: int, repeats: int = 20) -> dict[str, float]:
  mesh = mesh_lib.make_mesh(config.mesh)
  state, train_step, _ = steps.build(task, config, mesh)
  batch = task.example_batch(batch_size)
  predict = steps.make_predict_fn(task, mesh)
  sharded = mesh_lib.shard_batch(batch, mesh)
  state, metrics = train_step(state, sharded)  # compile
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(repeats):
    state, metrics = train_step(state, sharded)
  jax.block_until_ready(metrics)
  train_time = time.perf_counter() - start
  predict(state, batch)  # compile
  start = time.perf_counter()
  for _ in range(repeats):
    predict(state, batch)
  predict_time = time.perf_counter() - start
  return {"batch_size": batch_size, "devices": len(jax.devices()),
          "train_sequences_per_sec": repeats * batch_size / train_time,
          "predict_sequences_per_sec": repeats * batch_size / predict_time}
