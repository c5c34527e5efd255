"""Featurisation time and training throughput (real molecules per second).

The train step is the engine's (jitted, donated, on a mesh over the local devices);
batches come from the task's own pipeline, so the time includes host-side packing.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from medjax.engine import mesh as mesh_lib
from medjax.engine import steps as steps_lib
from medjax.molecule import graphs


def featurization(smiles: list[str]) -> dict[str, float]:
  """Cold featurisation (no cache) of `smiles`."""
  start = time.perf_counter()
  feats = graphs.featurize_many(smiles)
  seconds = time.perf_counter() - start
  return {"featurize/molecules": float(len(smiles)), "featurize/seconds": seconds,
          "featurize/molecules_per_sec": len(smiles) / seconds,
          "featurize/invalid": float(len(feats.invalid))}


def training(config, task, steps: int = 50, warmup: int = 5) -> dict[str, float]:
  """Wall-clock throughput over `steps` steps after `warmup` (compiling) steps."""
  mesh = mesh_lib.make_mesh(config.mesh)
  state, train_step, _ = steps_lib.build(task, config, mesh, max(config.total_steps, steps))
  data = iter(task.train_dataset(config.batch_size, config.seed))
  for _ in range(warmup):
    state, metrics = train_step(state, mesh_lib.shard_batch(next(data), mesh))
  jax.block_until_ready(metrics)
  molecules, host_seconds = 0, 0.0
  start, cpu_start = time.perf_counter(), time.process_time()
  for _ in range(steps):
    t = time.perf_counter()
    batch = next(data)
    host_seconds += time.perf_counter() - t
    molecules += int(np.sum(batch["_mask"]))
    state, metrics = train_step(state, mesh_lib.shard_batch(batch, mesh))
  jax.block_until_ready(metrics)
  seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
  budget = task.packer(task.graphs_for_batch(config.batch_size)).budget
  return {"train/molecules_per_sec": molecules / seconds,
          "train/steps_per_sec": steps / seconds,
          "train/molecules_per_step": molecules / steps,
          "train/host_batching_fraction": host_seconds / seconds,
          # On a shared machine wall time depends on the load; CPU time much less.
          "train/cpu_seconds_per_1k_molecules": 1000 * cpu_seconds / molecules,
          "train/node_budget": float(budget.nodes), "train/edge_budget": float(budget.edges)}
