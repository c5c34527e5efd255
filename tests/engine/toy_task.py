"""A tiny regression task for engine tests: BatchNorm + dropout MLP on random data."""

import flax.linen as nn
import grain
import jax.numpy as jnp
import numpy as np

import orbax.checkpoint as ocp

from medjax.engine import checkpoint as checkpoint_lib
from medjax.engine import config as config_lib
from medjax.engine.task import Evaluator, Task


class _MLP(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.Dense(16, use_bias=False)(x)  # a bias before BatchNorm has zero gradient
    x = nn.BatchNorm(use_running_average=not train)(x)
    x = nn.Dropout(0.1, deterministic=not train)(nn.relu(x))
    return nn.Dense(1)(x)[:, 0]


class _Source:
  def __init__(self, x, y, nan_after=None):
    self.x, self.y, self.nan_after = x, y, nan_after
    self.reads = 0

  def __len__(self):
    return len(self.x)

  def __getitem__(self, i):
    self.reads += 1
    y = self.y[i]
    if self.nan_after is not None and self.reads > self.nan_after:
      y = np.float32(np.nan)
    return {"x": self.x[i], "y": y, "_mask": np.float32(1)}


class _MSE(Evaluator):
  name = "val"

  def __init__(self, x, y):
    self.x, self.y = x, y

  def run(self, predict_fn):
    pred = predict_fn({"x": self.x, "y": self.y, "_mask": np.ones(len(self.x), np.float32)})
    yield "mse", float(np.mean((pred - self.y) ** 2))


class ToyTask(Task):
  """y = x @ w + noise; `on_element` is called for each element read (for tests)."""

  def __init__(self, n=64, dim=4, seed=0, on_element=None, nan_after=None,
               extra_evaluators=()):
    rng = np.random.default_rng(seed)
    self.x = rng.normal(size=(n, dim)).astype(np.float32)
    self.y = (self.x @ rng.normal(size=dim) + 0.1 * rng.normal(size=n)).astype(np.float32)
    self.model = _MLP()
    self.on_element = on_element
    self.nan_after = nan_after
    self.extra_evaluators = list(extra_evaluators)

  def model_inputs(self, batch):
    return {"x": batch["x"]}

  def loss(self, outputs, batch):
    err = jnp.sum(batch["_mask"] * (outputs - batch["y"]) ** 2) / jnp.sum(batch["_mask"])
    return err, {"mse": err}

  def train_dataset(self, batch_size, seed, shard_index=0, shard_count=1):
    ds = grain.MapDataset.source(_Source(self.x, self.y, self.nan_after))
    ds = ds[shard_index::shard_count].seed(seed).shuffle().repeat()
    if self.on_element is not None:
      ds = ds.map(self._tap)
    # Synchronous reads, so that `on_element` runs in step with the training loop.
    return ds.batch(batch_size, drop_remainder=True).to_iter_dataset(
        grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))

  def _tap(self, element):
    self.on_element()
    return element

  def example_batch(self, batch_size):
    return {"x": self.x[:batch_size], "y": self.y[:batch_size],
            "_mask": np.ones(batch_size, np.float32)}

  def evaluators(self):
    return [_MSE(self.x[:16], self.y[:16]), *self.extra_evaluators]


def toy_config(**overrides):
  c = config_lib.base_config()
  c.batch_size = 8
  c.total_steps = 12
  c.log_every = 2
  c.eval_every = 4
  c.checkpoint_every = 4
  c.async_checkpoints = False
  c.optimizer.learning_rate = 0.05
  for key, value in overrides.items():
    target = c
    *path, leaf = key.split(".")
    for p in path:
      target = target[p]
    target[leaf] = value
  return c


def latest_state(workdir: str):
  """The latest checkpoint's state, restored without an abstract target (numpy leaves)."""
  ckpt = checkpoint_lib.Checkpointer(workdir, async_save=False)
  restored = ckpt.latest.restore(ckpt.latest_step(),
                                 args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  ckpt.close()
  return restored["state"]
