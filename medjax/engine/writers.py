"""Metric writing (TensorBoard event files via tensorboardX, plus JSONL) and progress.

Only process 0 writes; other processes get a writer that does nothing.
"""

from __future__ import annotations

import json
import math
import os
import time

import jax
from absl import logging


class MetricWriter:
  """Writes scalars to `workdir/tensorboard` and `workdir/metrics.jsonl`."""

  def __init__(self, workdir: str, enabled: bool | None = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
    self._tb = self._jsonl = None
    if self.enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
      os.makedirs(workdir, exist_ok=True)
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
      self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    if not self.enabled:
      return
    clean = {k: float(v) for k, v in scalars.items()}
    for name, value in clean.items():
      self._tb.add_scalar(name, value, step)
    self._jsonl.write(json.dumps({"step": int(step), **{
        k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()}}) + "\n")
    self._jsonl.flush()

  def close(self) -> None:
    if self.enabled:
      self._tb.close()
      self._jsonl.close()


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
