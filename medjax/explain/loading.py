"""A trained model and a re-initialised twin, from any task's workdir, for `--mode=explain`.

    variables, random_variables = loading.trained_and_random(config, workdir, task)
    apply = loading.model_apply(task, batch, "image")  # (variables, x, **kw) -> outputs
"""

from __future__ import annotations

from typing import Callable

import flax
import jax
import numpy as np

from medjax.engine import restore


def variables_of(state) -> dict:
  """The model variables ({"params", **model_state}) of a TrainState, on the host."""
  return jax.device_get({"params": state.params, **flax.core.unfreeze(state.model_state)})


def random_variables(task, batch, seed: int) -> dict:
  """The task's model initialised afresh with `seed` (the randomisation test's model)."""
  keys = jax.random.split(jax.random.key(seed), 2)
  variables = task.model.init({"params": keys[0], "dropout": keys[1]},
                              **task.model_inputs(batch), train=False)
  return jax.device_get(flax.core.unfreeze(variables))


def trained_and_random(config, workdir: str, task, batch=None, seed: int = 1):
  """(best-checkpoint variables, the same model re-initialised with `seed`)."""
  state, _ = restore.load_for_prediction(config, workdir, task)
  batch = task.example_batch(1) if batch is None else batch
  return variables_of(state), random_variables(task, batch, seed)


def model_apply(task, batch: dict, input_key: str) -> Callable:
  """(variables, x, **kw) -> the model's outputs with `batch[input_key]` replaced by x.

  The other batch entries (masks, times, graph structure) are fixed; x's leading axis
  must match theirs. Evaluation mode (`train=False`); kw (e.g. `mutable`) pass through.
  """
  fixed = {k: np.asarray(v) for k, v in batch.items() if k != input_key}

  def apply(variables, x, **kw):
    inputs = task.model_inputs({**fixed, input_key: x})
    return task.model.apply(variables, **inputs, train=False, **kw)

  return apply
