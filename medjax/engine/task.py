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
  The engine adds `<evaluator>/loss`: `loss` over the batches the evaluator predicts
  on, weighted by their real examples (when those batches carry `_mask`). An
  evaluator with `final_only = True` (a test split) runs once, at the end of
  training, on the selected checkpoint; the others at every evaluation.
* `report(predict_fn, workdir)`: optional figures / files written at the end of a run.
* `write_run_files(workdir)`: optional files prediction needs (written before training).
* `optimizer`, `init_extra`, `update`: optional; a task whose training is not one
  supervised gradient step (a GAN's two optimisers, an RL rollout and update)
  overrides them and keeps everything else of the engine: mesh, jit with
  donation, checkpoints and resume, SIGTERM, NaN stop, writers.
* `divergence(metrics)`: optional; a message stops training (as a NaN does).
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
  """Runs a prediction function over a dataset and yields `(name, value)`.

  `final_only`: run only once, after training, on the checkpoint the run selects
  (the best one if kept): for test splits, whose metrics must not steer training.
  """

  name: str = "eval"
  final_only: bool = False
  reports_loss: bool = False  # yields its own "loss" (then the engine adds none)
  step: int | None = None  # set by the engine before each run: the evaluated step

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

  def write_run_files(self, workdir: str) -> None:
    """Files that prediction from this workdir needs besides the checkpoints and
    `config.json` (e.g. normalisation statistics); mains write them before training."""
    del workdir

  # -- Training-update extension points (defaults: one supervised gradient step) --

  def optimizer(self, optimizer_config, total_steps: int):
    """(optax transformation, learning-rate schedule); `tx.init(params)` is the
    checkpointed optimiser state. A task with several optimisers (a GAN) returns
    one transformation whose state holds them all (`medjax.engine.optim.Partitioned`)."""
    from medjax.engine import optim  # pylint: disable=import-outside-toplevel
    return optim.make_optimizer(optimizer_config, total_steps)

  def init_extra(self, rng: jax.Array, params: Any) -> Any:
    """Task-owned training state beside the model (environment states of a
    rollout, an EMA copy of weights): a pytree kept in `TrainState.extra`,
    donated and checkpointed like the rest. Arrays under the key "batched" (one
    row per environment or example) are split over the mesh's batch axes along
    their leading axis; the others follow the parameter sharding rules."""
    del rng, params
    return {}

  def update(self, state, batch: Batch, key: jax.Array, ctx) -> tuple[Any, dict]:
    """One training update inside the jitted, sharded step: returns (state, metrics).

    `ctx` (`medjax.engine.steps.UpdateContext`) gives the precision-aware `apply`,
    the optimiser `tx` and `schedule`, `value_and_grad` (the engine's gradient
    rule, so engine-level options such as per-example clipping apply to any
    task) and `gradient_step`, the default below. Overriding tasks (GAN: two
    optimisers; RL: rollout + PPO epochs) return the new params / model_state /
    opt_state / extra; the engine advances `state.step`. `metrics["loss"]` must
    exist: the trainer stops on a non-finite value.
    """
    return ctx.gradient_step(state, batch, key)

  def divergence(self, metrics: dict[str, float]) -> str | None:
    """A message if the mean training metrics since the last log show that training
    has failed although the loss is finite (a GAN's discriminator winning outright,
    mode collapse): the trainer then stops as on a NaN, keeping the last good
    checkpoint. None (the default) when all is well."""
    del metrics
    return None
