"""Orbax checkpoints holding the train state and the data-iterator position together.

`workdir/checkpoints/` keeps the latest N (resume reads these); with a best metric
set, `workdir/best/` keeps the single best by that metric. A checkpoint that cannot
be read (a truncated file, a missing manifest) is moved to
`workdir/checkpoints_corrupt/` and the next older one is used.
"""

from __future__ import annotations

import gc
import json
import logging as py_logging
import os
import re
import sys
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from medjax.engine.errors import InputError

CORRUPT_DIR = "checkpoints_corrupt"
# What a damaged checkpoint raises while restoring: tensorstore / JSON errors
# (ValueError), a missing item (KeyError), a missing file (OSError).
_READ_ERRORS = (ValueError, KeyError, OSError)


class Checkpointer:
  """Latest-N (+ optional best) checkpoints of {state, data iterator state}."""

  def __init__(self, workdir: str, keep: int = 3, best_metric: str = "",
               best_mode: str = "max", async_save: bool = True):
    self.workdir = workdir = os.path.abspath(workdir)
    self.best_metric = best_metric
    self.latest = ocp.CheckpointManager(
        os.path.join(workdir, "checkpoints"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=async_save, create=True))
    self.best = None
    if best_metric:
      if best_mode not in ("max", "min"):
        raise InputError(f"config.best_mode: {best_mode!r} is not 'max' or 'min'")
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
      raise InputError(f"config.best_metric {self.best_metric!r} is not among the "
                       f"evaluation metrics {sorted(metrics)}")
    self.best.save(step, args=_save_args(state, None),
                   metrics={k: float(v) for k, v in metrics.items()})

  def restore_latest(self, abstract_state):
    """(state, data_state or None) of the newest checkpoint that can be read, or None.

    Each unreadable one is moved aside (logged); with none left, a warning says that
    training starts from scratch. A checkpoint of another model is an InputError.
    """
    steps = sorted(self.latest.all_steps(), reverse=True)
    for step in steps:
      restored = self._restore_or_move(self.latest, step, abstract_state, "", True)
      if restored is not None:
        return restored
    if steps:
      logging.warning("No checkpoint in %s could be restored (all moved to %s): "
                      "training starts from scratch.", self.latest.directory,
                      os.path.join(self.workdir, CORRUPT_DIR))
    return None

  def restore_best(self, abstract_state):
    """The best checkpoint's state; None when none is kept or it cannot be read
    (then it is moved aside, with a warning)."""
    step = self.best_step()
    if step is None:
      return None
    restored = self._restore_or_move(self.best, step, abstract_state, "best-", False)
    return None if restored is None else restored[0]

  def _restore_or_move(self, manager, step, abstract_state, label, with_data):
    directory = os.path.join(manager.directory, str(step))
    restored, reason = read_step(directory, abstract_state, with_data)
    if restored is not None:
      return restored
    moved = _move_aside(directory, os.path.join(self.workdir, CORRUPT_DIR), label)
    manager.reload()
    logging.error("Checkpoint of step %d in %s cannot be restored (%s); moved it to %s.",
                  step, manager.directory, reason, moved)
    return None

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


def read_step(directory: str, abstract_state, with_data: bool = True):
  """Restores one step directory: ((state, data_state or None), None), or (None, why it
  cannot be read). Every process calls it and all agree: a failure on one is a
  failure on all. A checkpoint of another model (names or shapes differ from
  `abstract_state`) raises InputError.
  """
  args = {"state": ocp.args.StandardRestore(abstract_state)}
  if with_data and os.path.isdir(os.path.join(directory, "data")):
    args["data"] = ocp.args.JsonRestore()
  # The handler itself: Checkpointer.restore would wait for the other processes
  # after a failure, before they could agree on it.
  handler = ocp.CompositeCheckpointHandler()
  _quiet_leftovers_of_failed_reads()
  try:
    restored = handler.restore(epath.Path(directory), args=ocp.args.Composite(**args))
    reason = None
  except _READ_ERRORS as e:
    restored, reason = None, _one_line(e)
    gc.collect()  # the failed restore's abandoned reads, while they are quieted
  finally:
    handler.close()
  if not _on_any_process(reason is not None):
    data = restored.get("data") if "data" in args else None
    if data is not None and "per_process" in data:  # this process's, else process 0's
      data = data["per_process"].get(str(jax.process_index()), data["per_process"]["0"])
    return (restored["state"], data), None
  differences = _differences(os.path.join(directory, "state"), abstract_state)
  if differences:
    raise InputError(
        f"checkpoint {directory} holds another model than this config builds "
        f"({'; '.join(differences[:3])}): use a new --workdir, or the config it was "
        "trained with")
  return None, reason or "unreadable on another process"


def _differences(state_dir: str, abstract_state) -> list[str]:
  """'name: saved vs expected' for arrays whose names or shapes differ; [] when they
  match or the metadata itself cannot be read (then the checkpoint is damaged)."""
  try:
    metadata = ocp.StandardCheckpointHandler().metadata(epath.Path(state_dir))
  except _READ_ERRORS:
    return []
  saved = {leaf.name: tuple(leaf.shape) for leaf in jax.tree.leaves(metadata.tree)
           if hasattr(leaf, "shape")}
  expected = {jax.tree_util.keystr(path, simple=True, separator="."): tuple(leaf.shape)
              for path, leaf in jax.tree_util.tree_flatten_with_path(abstract_state)[0]}
  return [f"{name}: {saved.get(name, 'absent')} saved, {expected.get(name, 'absent')} now"
          for name in sorted(set(saved) | set(expected),
                             key=lambda n: (not n.startswith("params."), n))
          if saved.get(name) != expected.get(name)]


class _FailedReadNoise(py_logging.Filter):
  """Drops asyncio's 'Future exception was never retrieved' for tensorstore reads."""

  def filter(self, record):
    error = record.exc_info[1] if record.exc_info else None
    return not (isinstance(error, ValueError) and "tensorstore_spec" in str(error))


def _leftover_of_failed_read(unraisable) -> bool:
  error, code = unraisable.exc_value, getattr(unraisable.object, "cr_code", None)
  if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
    return True  # a tensorstore callback into orbax's closed event loop
  return code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename


def _quiet_leftovers_of_failed_reads() -> None:
  """When one read of a restore fails, orbax closes its event loop while its other
  reads are still running: each then prints a traceback ('Event loop is closed',
  an abandoned orbax coroutine, 'Future exception was never retrieved' for a
  tensorstore error) around the one-line report. From the first restore on, these
  are dropped; nothing else is."""
  hook = sys.unraisablehook
  if getattr(hook, "medjax_quiet", False):
    return

  def quiet(unraisable):
    if not _leftover_of_failed_read(unraisable):
      hook(unraisable)
  quiet.medjax_quiet = True
  sys.unraisablehook = quiet
  py_logging.getLogger("asyncio").addFilter(_FailedReadNoise())


def _one_line(error: Exception) -> str:
  """The first line of an error, without tensorstore's long spec."""
  text = str(error).strip().splitlines()[0] if str(error).strip() else ""
  text = re.sub(r'Error opening "\w+" driver: ', "", text.split(" [tensorstore_spec")[0])
  return f"{type(error).__name__}: {text[:400]}"


def _on_any_process(flag: bool) -> bool:
  if jax.process_count() == 1:
    return flag
  return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))


def _move_aside(directory: str, corrupt_root: str, label: str) -> str:
  """Process 0 renames `directory` to `corrupt_root/<label><step>-<n>`; all wait."""
  step = os.path.basename(directory.rstrip("/"))
  target, n = None, 0
  if jax.process_index() == 0:
    os.makedirs(corrupt_root, exist_ok=True)
    while os.path.exists(os.path.join(corrupt_root, f"{label}{step}-{n}")):
      n += 1
    target = os.path.join(corrupt_root, f"{label}{step}-{n}")
    os.rename(directory, target)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"medjax_moved_{label}{step}")
  return target or os.path.join(corrupt_root, f"{label}{step}-<n> (by process 0)")


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
  """The state of `workdir/best` (when kept and preferred), else of the newest latest
  checkpoint that can be read. Unreadable ones are skipped with a warning (not
  moved: predicting leaves the workdir as it is); none readable is an InputError."""
  failures = []
  for sub in (("best", "checkpoints") if prefer_best else ("checkpoints",)):
    directory = os.path.join(os.path.abspath(workdir), sub)
    if not os.path.isdir(directory):
      continue
    with ocp.CheckpointManager(directory) as manager:
      for step in sorted(manager.all_steps(), reverse=True):
        path = os.path.join(directory, str(step))
        restored, reason = read_step(path, abstract_state, with_data=False)
        if restored is not None:
          if failures:
            logging.warning("Using checkpoint %s instead.", path)
          return restored[0]
        logging.warning("Checkpoint %s cannot be restored (%s).", path, reason)
        failures.append(f"{path} ({reason})")
  if failures:
    raise InputError(f"no checkpoint under {workdir} can be restored: "
                     + "; ".join(failures))
  raise InputError(f"no checkpoint under {workdir} (checkpoints/ or best/): is it the "
                   "workdir of a finished training run?")
