"""A tiny regression task with random access to its examples, for the DP tests."""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from medjax.engine.task import Evaluator, Task


def linear_loss(params, batch):
  """Mask-mean squared error of a linear model (the engine's loss convention)."""
  pred = batch["x"] @ params["w"] + params["b"]
  err = 0.5 * jnp.square(pred - batch["y"])
  mask = batch["_mask"]
  loss = jnp.sum(mask * err) / jnp.maximum(jnp.sum(mask), 1.0)
  return loss, {"mse": loss}


def numpy_example_grads(params, x, y):
  """Per-example gradients of 0.5 (x.w + b - y)^2, by hand: [n, d] and [n]."""
  r = x @ np.asarray(params["w"]) + float(params["b"]) - y
  return r[:, None] * x, r


class Source:
  def __init__(self, x, y):
    self.x, self.y = x, y

  def __len__(self):
    return len(self.x)

  def batch(self, ids, rows):
    ids = np.asarray(ids, np.int64)
    out = {"x": np.zeros((rows, self.x.shape[1]), np.float32),
           "y": np.zeros(rows, np.float32), "_mask": np.zeros(rows, np.float32)}
    out["x"][:len(ids)], out["y"][:len(ids)] = self.x[ids], self.y[ids]
    out["_mask"][:len(ids)] = 1.0
    return out


class Dense(nn.Module):
  norm: str = "none"

  @nn.compact
  def __call__(self, x, train=False):
    h = nn.Dense(4)(x)
    if self.norm == "batch":
      h = nn.BatchNorm(use_running_average=not train)(h)
    return nn.Dense(1)(h)[:, 0]


class Mse(Evaluator):
  name = "train"

  def __init__(self, source):
    self.source = source

  def run(self, predict_fn):
    batch = self.source.batch(np.arange(len(self.source)), len(self.source))
    yield "mse", float(np.mean((predict_fn(batch) - batch["y"]) ** 2))


class TinyTask(Task):
  """y = x . w* + noise, N examples; `norm="batch"` adds a BatchNorm layer."""

  def __init__(self, n=64, dim=3, norm="none", seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = (x @ np.arange(1, dim + 1) + 0.1 * rng.normal(size=n)).astype(np.float32)
    self.source, self.model = Source(x, y), Dense(norm)

  def model_inputs(self, batch):
    return {"x": batch["x"]}

  def loss(self, outputs, batch):
    mask = batch["_mask"]
    loss = jnp.sum(mask * jnp.square(outputs - batch["y"])) / jnp.maximum(jnp.sum(mask), 1.0)
    return loss, {}

  def train_dataset(self, batch_size, seed, shard_index=0, shard_count=1):
    raise AssertionError("a private run must sample from train_source()")

  def example_batch(self, batch_size):
    return self.source.batch(np.arange(batch_size), batch_size)

  def train_source(self):
    return self.source

  def evaluators(self):
    return [Mse(self.source)]
