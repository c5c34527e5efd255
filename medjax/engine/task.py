"""The contract between the shared trainer and a task.

The trainer (`medjax.engine.train`) knows no task. A task hands it:

* `model`: a Flax Linen module, called as
  `model.apply(variables, **task.model_inputs(batch), train=bool, rngs=...)`.
  Non-parameter collections (e.g. `batch_stats`) are carried by the trainer.
* `model_inputs(batch)`: the keyword arguments the model takes from a batch.
* `loss(outputs, batch)`: `(scalar loss, {name: scalar})`, averaged over the real
  examples only (`batch["_mask"]` is 1 for real examples, 0 for padding).
* `augment(batch, key)`: on-device, jit-able augmentation with an explicit PRNG key
  (identity by default). Runs inside the jitted train step.
* `train_dataset(batch_size, seed, shard_index, shard_count)`: a `grain.IterDataset`
  of numpy dict batches (per-process batch size, with `_mask`), endless, whose
  iterator state the trainer checkpoints.
* `example_batch(batch_size)`: one numpy batch with the training shapes (for init).
* `evaluators()`: objects with `name` and `run(predict_fn)` yielding `(name, value)`.
* `report(predict_fn, workdir)`: optional figures / files written at the end of a run.
* `native_precision`: True if the model applies `config.compute_dtype` itself;
  otherwise the engine casts parameters and inputs for it (`steps.make_apply`),
  except the model inputs named in `float32_inputs`.

Batches are dicts of arrays whose leading axis is the example axis.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np

Batch = Mapping[str, Any]
PredictFn = Callable[[Batch], Any]  # host batch -> host (numpy) model outputs


class Evaluator(abc.ABC):
  """Runs a prediction function over a dataset and yields `(name, value)`."""

  name: str = "eval"

  @abc.abstractmethod
  def run(self, predict_fn: PredictFn) -> Iterator[tuple[str, float]]:
    ...


class Task(abc.ABC):
  """Model, loss, metrics and input pipeline of one task."""

  model: nn.Module
  native_precision: bool = False
  float32_inputs: tuple[str, ...] = ()

  @abc.abstractmethod
  def model_inputs(self, batch: Batch) -> dict[str, Any]:
    ...

  @abc.abstractmethod
  def loss(self, outputs: Any, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    ...

  def augment(self, batch: Batch, key: jax.Array) -> Batch:
    del key
    return batch

  @abc.abstractmethod
  def train_dataset(self, batch_size: int, seed: int, shard_index: int = 0,
                    shard_count: int = 1):
    ...

  @abc.abstractmethod
  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    ...

  def evaluators(self) -> Sequence[Evaluator]:
    return ()

  def report(self, predict_fn: PredictFn, workdir: str) -> dict[str, float]:
    del predict_fn, workdir
    return {}
