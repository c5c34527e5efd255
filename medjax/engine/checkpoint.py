"""Orbax checkpoints holding the train state and the data-iterator position together.

`workdir/checkpoints/` keeps the latest N (resume reads these); with a best metric
set, `workdir/best/` keeps the single best by that metric.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils


class Checkpointer:
  """Latest-N (+ optional best) checkpoints of {state, data iterator state}."""

  def __init__(self, workdir: str, keep: int = 3, best_metric: str = "",
               best_mode: str = "max", async_save: bool = True):
    workdir = os.path.abspath(workdir)
    self.best_metric = best_metric
    self.latest = ocp.CheckpointManager(
        os.path.join(workdir, "checkpoints"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=async_save, create=True))
    self.best = None
    if best_metric:
      if best_mode not in ("max", "min"):
        raise ValueError(f"config.best_mode: {best_mode!r} is not 'max' or 'min'")
      self.best = ocp.CheckpointManager(
          os.path.join(workdir, "best"),
          options=ocp.CheckpointManagerOptions(
              max_to_keep=1, enable_async_checkpointing=async_save, create=True,
              best_fn=lambda m: m[best_metric], best_mode=best_mode))

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def save(self, step: int, state, data_state: dict[str, Any] | None, force=False) -> None:
    """Collective: every process calls it; each one's data position is kept."""
    if data_state is not None:
      data_state = {"per_process": _gather_json(data_state)}
    self.latest.save(step, args=_save_args(state, data_state), force=force)

  def save_best(self, step: int, state, metrics: dict[str, float]) -> None:
    if self.best is None:
      return
    if self.best_metric not in metrics:
      raise KeyError(f"config.best_metric {self.best_metric!r} is not among the "
                     f"evaluation metrics {sorted(metrics)}")
    self.best.save(step, args=_save_args(state, None),
                   metrics={k: float(v) for k, v in metrics.items()})

  def restore(self, abstract_state, step: int | None = None, best: bool = False):
    """Returns (state, data_state or None) from the latest (or best) checkpoint."""
    manager = self.best if best else self.latest
    step = manager.best_step() if best else (step or manager.latest_step())
    args = {"state": ocp.args.StandardRestore(abstract_state)}
    if os.path.isdir(os.path.join(manager.directory, str(step), "data")):
      args["data"] = ocp.args.JsonRestore()
    restored = manager.restore(step, args=ocp.args.Composite(**args))
    data = restored.get("data") if "data" in args else None
    if data is not None and "per_process" in data:  # this process's, else process 0's
      data = data["per_process"].get(str(jax.process_index()), data["per_process"]["0"])
    return restored["state"], data

  def best_step(self) -> int | None:
    return self.best.best_step() if self.best is not None else None

  def wait(self) -> None:
    self.latest.wait_until_finished()
    if self.best is not None:
      self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    if self.best is not None:
      self.best.close()


def _gather_json(obj) -> dict[str, Any]:
  """{process index: obj of that process}, on every process (JSON through all-gather).

  Orbax writes a JSON item from the primary process only, so each process's
  data-iterator position (they differ when processes read different shards)
  is gathered into it explicitly.
  """
  if jax.process_count() == 1:
    return {"0": obj}
  data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
  lengths = multihost_utils.process_allgather(np.int32(len(data)))
  padded = np.zeros(int(np.max(lengths)), np.uint8)
  padded[:len(data)] = data
  every = multihost_utils.process_allgather(padded)
  return {str(i): json.loads(bytes(every[i][:int(n)]).decode())
          for i, n in enumerate(lengths)}


def _save_args(state, data_state):
  args = {"state": ocp.args.StandardSave(state)}
  if data_state is not None:
    args["data"] = ocp.args.JsonSave(data_state)
  return ocp.args.Composite(**args)


def restore_state(workdir: str, abstract_state, prefer_best: bool = True):
  """The state of `workdir/best` (when kept and preferred), else of the latest checkpoint."""
  for sub in (("best", "checkpoints") if prefer_best else ("checkpoints",)):
    directory = os.path.join(os.path.abspath(workdir), sub)
    if not os.path.isdir(directory):
      continue
    with ocp.CheckpointManager(directory) as manager:
      step = manager.latest_step()
      if step is not None:
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
        return manager.restore(step, args=args)["state"]
  raise FileNotFoundError(f"no checkpoint under {workdir} (checkpoints/ or best/)")
