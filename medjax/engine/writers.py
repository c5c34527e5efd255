"""Metric writing (TensorBoard event files via tensorboardX, plus JSONL) and progress.

Only process 0 writes; other processes get a writer that does nothing. Non-finite
values (an HD95 of inf on an empty mask, a NaN AUC of a one-class split) go to
metrics.jsonl only: TensorBoard cannot plot them.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time

import jax
from absl import logging

_FILE_IDS = itertools.count()  # event file names must differ within one second


class MetricWriter:
  """Writes scalars to `workdir/tensorboard` and `workdir/metrics.jsonl`.

  `resume_step`: the step training continues from. Rows an earlier run wrote after
  it are dropped from metrics.jsonl and hidden in TensorBoard (`purge_step`), as the
  steps are run again; `redo_evaluations` also drops the evaluation rows at
  `resume_step` itself (a finished run's final evaluation, which runs again).
  """

  def __init__(self, workdir: str, enabled: bool | None = None, resume_step: int = 0,
               redo_evaluations: bool = False):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
    self._tb = self._jsonl = None
    self._skipped = set()
    if self.enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
      os.makedirs(workdir, exist_ok=True)
      rewind_jsonl(self.jsonl_path, resume_step, redo_evaluations)
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"),
                               purge_step=resume_step + 1,
                               filename_suffix=f".{os.getpid()}.{next(_FILE_IDS)}")
      self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    if not self.enabled:
      return
    clean = {k: float(v) for k, v in scalars.items()}
    for name, value in clean.items():
      if math.isfinite(value):
        self._tb.add_scalar(name, value, step)
      elif name not in self._skipped:
        self._skipped.add(name)
        logging.warning("%s = %s at step %d: not finite, so not written to TensorBoard "
                        "(kept in metrics.jsonl); later non-finite values of %s are "
                        "skipped without a message.", name, value, step, name)
    self._jsonl.write(json.dumps({"step": int(step), **{
        k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()}}) + "\n")
    self._jsonl.flush()

  def close(self) -> None:
    if self.enabled:
      self._tb.close()
      self._jsonl.close()


def rewind_jsonl(path: str, step: int, redo_evaluations: bool = False) -> int:
  """Keeps the rows of `path` up to `step` (at `step` itself only training rows when
  `redo_evaluations`); atomic (temporary file + os.replace). Returns rows dropped."""
  if not os.path.exists(path):
    return 0
  with open(path, encoding="utf-8") as f:
    lines = [line for line in f if line.strip()]
  keep = []
  for line in lines:
    try:
      row = json.loads(line)
    except json.JSONDecodeError:  # a line cut short by a killed run
      logging.warning("%s: dropping an unreadable line %r", path, line[:80])
      continue
    if row["step"] < step or row["step"] == step and (
        not redo_evaluations or any(k.startswith("train/") for k in row)):
      keep.append(line if line.endswith("\n") else line + "\n")
  if len(keep) < len(lines):
    scratch = f"{path}.tmp{os.getpid()}"
    with open(scratch, "w", encoding="utf-8") as f:
      f.writelines(keep)
    os.replace(scratch, path)
    logging.info("Resuming at step %d: dropped %d rows of later steps from %s.", step,
                 len(lines) - len(keep), path)
  return len(lines) - len(keep)


class Progress:
  """Logs step, steps/s, examples/s and ETA every time `log` is called."""

  def __init__(self, total_steps: int, first_step: int, batch_size: int):
    self.total_steps, self.batch_size = total_steps, batch_size
    self._t0, self._step0 = None, first_step
    self.steps_per_sec = float("nan")

  def start(self, step: int) -> None:
    """Call after the first (compiling) step, so that rates exclude compilation."""
    self._t0, self._step0 = time.perf_counter(), step

  def log(self, step: int, scalars: dict[str, float]) -> None:
    if self._t0 is not None and step > self._step0:
      self.steps_per_sec = (step - self._step0) / (time.perf_counter() - self._t0)
    eta = (self.total_steps - step) / self.steps_per_sec if self.steps_per_sec > 0 else 0
    shown = " ".join(f"{k}={v:.4g}" for k, v in sorted(scalars.items()))
    logging.info("step %d/%d | %.2f steps/s, %.1f examples/s, ETA %s | %s", step,
                 self.total_steps, self.steps_per_sec, self.steps_per_sec * self.batch_size,
                 _fmt_seconds(eta), shown)


def _fmt_seconds(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  minutes, secs = divmod(int(seconds), 60)
  return f"{minutes}m{secs:02d}s"
