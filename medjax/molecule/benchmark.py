"""Featurisation time and training throughput (real molecules per second).

The train step is the engine's (jitted, donated, on a mesh over the local devices);
batches come from the task's own pipeline, so the time includes host-side packing.
`Clock` and the `time_*` helpers split that into packing, transfer, step alone and
the whole pipeline (experiments/bench/molecule_pipeline.py).
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


# ----- pipeline vs step (experiments/bench/molecule_pipeline.py) ----------------------


def per_array_transfer(batch, mesh) -> dict[str, jax.Array]:
  """The device transfer before `mesh.shard_batch` used one `jax.device_put` call:
  one `make_array_from_process_local_data` per array (the reference, for "before")."""
  sharding = mesh_lib.batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}


def _molecules(batch) -> int:
  return int(np.sum(batch["_mask"]))


class Clock:
  """Molecules, wall seconds and process CPU seconds (all threads) of timed runs. On a
  shared machine wall time follows the load; CPU time much less."""

  def __init__(self):
    self.molecules, self.seconds, self.cpu_seconds = 0, 0.0, 0.0

  def __enter__(self):
    self._wall, self._cpu = time.perf_counter(), time.process_time()
    return self

  def __exit__(self, *exc):
    self.seconds += time.perf_counter() - self._wall
    self.cpu_seconds += time.process_time() - self._cpu

  def rates(self) -> tuple[float, float]:
    """(molecules per wall second, molecules per CPU second)."""
    return self.molecules / self.seconds, self.molecules / self.cpu_seconds


def time_host(clock: Clock, data, steps: int, mesh=None, transfer=None) -> None:
  """`steps` batches of `data` packed (and, with `transfer`, moved to the device and
  waited for), without training."""
  with clock:
    for _ in range(steps):
      batch = next(data)
      clock.molecules += _molecules(batch)
      if transfer is not None:
        jax.block_until_ready(transfer(batch, mesh))


def time_step(clock: Clock, state, train_step, device_batches, molecules: list[int]):
  """The train step alone on batches already on the device; returns the state."""
  with clock:
    for batch in device_batches:
      state, metrics = train_step(state, batch)
    jax.block_until_ready(metrics)
  clock.molecules += sum(molecules)
  return state


def time_pipeline(clock: Clock, state, train_step, data, steps: int, mesh, transfer):
  """As the engine's loop trains (medjax/engine/train.py): `train_step(state,
  transfer(next(data)))`, metrics not waited for until the end; returns the state."""
  with clock:
    for _ in range(steps):
      batch = next(data)
      clock.molecules += _molecules(batch)
      state, metrics = train_step(state, transfer(batch, mesh))
    jax.block_until_ready(metrics)
  return state
