"""Training length from epochs: `task.epochs > 0` derives the step counts from the
training split's size (as Chemprop counts epochs), instead of a fixed `total_steps`.

steps per epoch = training molecules / batch size (at least 1); total_steps = epochs x
that; warm-up = `task.warmup_epochs` of it (Chemprop: 2); evaluation (and the best
checkpoint by validation) once an epoch; ~10 checkpoints and ~50 log lines a run.
"""

from __future__ import annotations

import ml_collections


def steps_per_epoch(train_molecules: int, batch_size: int) -> float:
  return max(1.0, train_molecules / batch_size)


def apply_epochs(config: ml_collections.ConfigDict, train_molecules: int) -> bool:
  """Sets total_steps, warm-up, eval / checkpoint / log intervals when task.epochs > 0;
  returns whether it did (task.epochs = 0 keeps the config's own step counts)."""
  epochs = config.task.epochs
  if epochs <= 0:
    return False
  per_epoch = steps_per_epoch(train_molecules, config.batch_size)
  steps = max(1, round(epochs * per_epoch))
  config.total_steps = steps
  config.optimizer.warmup_steps = min(round(config.task.warmup_epochs * per_epoch), steps - 1)
  config.eval_every = max(1, min(round(per_epoch), steps))
  config.checkpoint_every = max(1, steps // 10)
  config.log_every = max(1, steps // 50)
  return True
