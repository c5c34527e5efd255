"""FedProx's proximal term, mu/2 ||w - w_global||^2, as a Task wrapper.

Flower's `FedProx` strategy only sends `proximal-mu` to the clients; the client adds
the term to its local objective (Li et al. 2018, eq. 2). `ProximalTask` does so with
the engine's own gradient step: `update` wraps the loss function handed to the
engine's gradient rule (`ctx.value_and_grad`, so engine-level options such as DP
clipping still apply) and adds the term. The anchor `w_global` and `mu` live in
`TrainState.extra` (traced values: changing them does not recompile). mu = 0 gives
exactly the plain step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from medjax.engine import steps
from medjax.engine.task import Task


def proximal_term(params, anchor, mu):
  """mu/2 * sum of squared differences over all parameter leaves."""
  squares = jax.tree.map(lambda w, g: jnp.sum(jnp.square(w - g)), params, anchor)
  return 0.5 * mu * sum(jax.tree.leaves(squares))


class ProximalTask(Task):
  """`inner` with the proximal term added to its training loss."""

  def __init__(self, inner: Task):
    self.inner = inner
    self.model = inner.model
    self.native_precision = inner.native_precision
    self.float32_inputs = inner.float32_inputs

  def __getattr__(self, name):  # anything else (examples, splits, ...) of the inner task
    if name == "inner":
      raise AttributeError(name)
    return getattr(self.inner, name)

  def model_inputs(self, batch):
    return self.inner.model_inputs(batch)

  def loss(self, outputs, batch):
    return self.inner.loss(outputs, batch)

  def augment(self, batch, key):
    return self.inner.augment(batch, key)

  def train_dataset(self, batch_size, seed, shard_index=0, shard_count=1):
    return self.inner.train_dataset(batch_size, seed, shard_index, shard_count)

  def example_batch(self, batch_size):
    return self.inner.example_batch(batch_size)

  def evaluators(self):
    return self.inner.evaluators()

  def optimizer(self, optimizer_config, total_steps):
    return self.inner.optimizer(optimizer_config, total_steps)

  def init_extra(self, rng, params):
    anchor = jax.tree.map(jnp.zeros_like, params)
    return {"inner": self.inner.init_extra(rng, params), "anchor": anchor,
            "mu": jnp.zeros((), jnp.float32)}

  def update(self, state, batch, key, ctx):
    anchor, mu = state.extra["anchor"], state.extra["mu"]

    def grad_fn(loss_fn, params, batch):
      # The term is data-independent: added after the engine's gradient rule, so
      # DP-SGD clips and noises only the data gradient, never the proximal pull.
      (loss, aux), grads = ctx.value_and_grad(loss_fn, params, batch)
      term, term_grads = jax.value_and_grad(proximal_term)(params, anchor, mu)
      return (loss + term, aux), jax.tree.map(jnp.add, grads, term_grads)

    gradient_step = steps.make_gradient_step(self.inner, ctx.apply, ctx.tx, ctx.schedule,
                                             grad_fn=grad_fn)
    inner_state = state.replace(extra=state.extra["inner"])
    inner_ctx = ctx.replace(value_and_grad=grad_fn, gradient_step=gradient_step)
    new_state, metrics = self.inner.update(inner_state, batch, key, inner_ctx)
    metrics = {**metrics, "proximal": proximal_term(state.params, anchor, mu)}
    return new_state.replace(extra={**state.extra, "inner": new_state.extra}), metrics
