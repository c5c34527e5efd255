"""Train state, its sharded initialisation, and the jitted train / predict steps."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from medjax.engine import mesh as mesh_lib
from medjax.engine import partitioning
from medjax.engine.task import Task


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  model_state: Any  # non-parameter collections, e.g. batch_stats
  opt_state: Any
  rng: jax.Array  # raw uint32 key; the step key is fold_in(rng, step)
  extra: Any = flax.struct.field(default_factory=dict)  # task-owned (Task.init_extra)


@flax.struct.dataclass
class UpdateContext:
  """What a task's `update` is given inside the jitted step (see Task.update)."""
  apply: Callable = flax.struct.field(pytree_node=False)  # (variables, batch, **kw)
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)
  schedule: Callable = flax.struct.field(pytree_node=False)
  # (loss_fn(params, batch) -> (loss, aux), params, batch) -> ((loss, aux), grads)
  value_and_grad: Callable = flax.struct.field(pytree_node=False)
  # (state, batch, key, augment=True); augment=False when `update` already augmented
  gradient_step: Callable = flax.struct.field(pytree_node=False)


def _variables(params, model_state):
  return {"params": params, **model_state}


def make_init_fn(task: Task, tx: optax.GradientTransformation, example_batch):
  """A function rng -> TrainState, to be traced by eval_shape and jit."""
  def init(rng):
    init_rng, dropout_rng, state_rng = jax.random.split(rng, 3)
    # Initialisers draw from RBG keys: threefry's unrolled hash made XLA's CPU
    # compile of a small U-Net's init take ~30 s; RBG compiles in ~2 s.
    init_rng, dropout_rng = (jax.random.wrap_key_data(
        jax.random.bits(k, (4,), jnp.uint32), impl="rbg") for k in (init_rng, dropout_rng))
    variables = task.model.init({"params": init_rng, "dropout": dropout_rng},
                                **task.model_inputs(example_batch), train=False)
    variables = flax.core.unfreeze(variables)
    params = variables.pop("params")
    extra_rng, state_rng = jax.random.split(state_rng)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=variables,
                      opt_state=tx.init(params), rng=state_rng,
                      extra=task.init_extra(extra_rng, params))
  return init


def create_state(task, tx, example_batch, mesh, seed: int,
                 rules=partitioning.DEFAULT_RULES):
  """eval_shape -> shardings -> jit(init, out_shardings): parameters born sharded.

  Returns (state, state shardings, abstract state) — the last is what a
  checkpoint restore needs.
  """
  example_batch = {k: v for k, v in example_batch.items()
                   if np.asarray(v).dtype.kind in "biuf"}
  init = make_init_fn(task, tx, example_batch)
  rng = jax.random.PRNGKey(seed)
  abstract = jax.eval_shape(init, rng)
  shardings = partitioning.tree_shardings(abstract, mesh, rules)
  shardings = shardings.replace(step=mesh_lib.replicated(mesh), rng=mesh_lib.replicated(mesh),
                                extra=_extra_shardings(abstract.extra, shardings.extra, mesh))
  state = jax.jit(init, out_shardings=shardings)(rng)
  abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          abstract, shardings)
  return state, shardings, abstract


def _extra_shardings(extra, by_rules, mesh):
  """`extra["batched"]` (per-environment or per-example arrays) is split over the
  batch axes along its leading axis; the rest (e.g. an EMA copy of parameters)
  follows the parameter rules."""
  if not isinstance(extra, dict) or "batched" not in extra:
    return by_rules
  divisor = mesh_lib.batch_divisor(mesh)

  def split(leaf):
    if leaf.ndim and leaf.shape[0] % divisor == 0:
      return mesh_lib.batch_sharding(mesh)
    return mesh_lib.replicated(mesh)
  return {**by_rules, "batched": jax.tree.map(split, extra["batched"])}


def cast_floats(tree, dtype):
  """Floating-point leaves of `tree` as `dtype`; other leaves unchanged."""
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating)
                      else x, tree)


def make_apply(task: Task, compute_dtype: str = "float32"):
  """`task.model.apply`, run in `compute_dtype` unless the model sets its own precision.

  Mixed precision for any model: parameters (kept in float32 in the state) and
  floating inputs are cast to `compute_dtype` for the call, outputs back to
  float32. Inputs named in `task.float32_inputs` (e.g. times in hours, which
  bfloat16 would round to 15 minutes) stay float32; updated collections (batch
  statistics) keep their dtypes. Models with their own `dtype` handling (the
  U-Net) say so with `task.native_precision = True`.
  """
  dtype = jnp.dtype(compute_dtype)
  if dtype == jnp.float32 or task.native_precision:
    return lambda variables, batch, **kw: task.model.apply(
        variables, **task.model_inputs(batch), **kw)
  keep = set(task.float32_inputs)

  def apply(variables, batch, **kw):
    inputs = {k: v if k in keep else cast_floats(v, dtype)
              for k, v in task.model_inputs(batch).items()}
    cast = {**variables, "params": cast_floats(variables["params"], dtype)}
    out = task.model.apply(cast, **inputs, **kw)
    if not kw.get("mutable"):
      return cast_floats(out, jnp.float32)
    outputs, updates = out
    updates = {k: jax.tree.map(lambda new, old: new.astype(old.dtype), v, variables[k])
               if k in variables else v for k, v in updates.items()}
    return cast_floats(outputs, jnp.float32), updates
  return apply


_GRAD_RULE_STREAM = 0x6A7D  # fold_in constant: the gradient rule's key (DP noise)


def value_and_grad(loss_fn, params, batch):
  """The engine's gradient rule: d loss_fn(params, batch) / d params, with aux."""
  return jax.value_and_grad(loss_fn, has_aux=True)(params, batch)


def make_gradient_step(task: Task, apply, tx, schedule, grad_fn=value_and_grad):
  """The default update: augment (unless `augment=False`: a task's `update` that
  augmented the batch itself), forward + loss, gradient, optimiser step."""
  def gradient_step(state: TrainState, batch, key, augment: bool = True):
    augment_rng, dropout_rng = jax.random.split(key)
    if augment:
      batch = task.augment(batch, augment_rng)
    mutable = list(state.model_state.keys()) or False

    def loss_fn(params, batch):
      out = apply(_variables(params, state.model_state), batch, train=True,
                  rngs={"dropout": dropout_rng}, mutable=mutable)
      outputs, new_model_state = out if mutable else (out, state.model_state)
      loss, metrics = task.loss(outputs, batch)
      return loss, (metrics, new_model_state)

    (loss, (metrics, model_state)), grads = grad_fn(loss_fn, state.params, batch)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads),
               "learning_rate": schedule(state.step)}
    return state.replace(params=params, model_state=flax.core.unfreeze(model_state),
                         opt_state=opt_state), metrics
  return gradient_step


def make_train_step(task: Task, tx, schedule, mesh, state_shardings,
                    compute_dtype: str = "float32", grad_rule: Callable | None = None):
  """Jitted (state, batch) -> (state, metrics) running `task.update`; the input
  state is donated. The step key is fold_in(state.rng, state.step). `grad_rule`
  (key -> value_and_grad, e.g. DP-SGD's, `medjax.privacy.dp`) replaces the
  engine's gradient rule for every task; its key is drawn from the step key."""
  apply = make_apply(task, compute_dtype)

  def train_step(state: TrainState, batch):
    key = jax.random.fold_in(state.rng, state.step)
    grad_fn = value_and_grad if grad_rule is None else grad_rule(
        jax.random.fold_in(key, _GRAD_RULE_STREAM))
    ctx = UpdateContext(apply=apply, tx=tx, schedule=schedule, value_and_grad=grad_fn,
                        gradient_step=make_gradient_step(task, apply, tx, schedule, grad_fn))
    new_state, metrics = task.update(state, batch, key, ctx)
    return new_state.replace(step=state.step + 1), metrics

  return jax.jit(train_step, donate_argnums=(0,),
                 out_shardings=(state_shardings, mesh_lib.replicated(mesh)))


def build(task: Task, config, mesh, total_steps: int | None = None,
          grad_rule: Callable | None = None):
  """Optimiser, sharded initial state and jitted train step for `task` under `config`.

  Returns (state, train_step, abstract state). `total_steps` (default
  `config.total_steps`) sets the learning-rate schedule's length; `grad_rule`: see
  `make_train_step`.
  """
  tx, schedule = task.optimizer(config.optimizer, total_steps or config.total_steps)
  state, shardings, abstract = create_state(task, tx, task.example_batch(1), mesh,
                                            config.seed, config.logical_axis_rules)
  return state, make_train_step(task, tx, schedule, mesh, shardings,
                                config.compute_dtype, grad_rule), abstract


def make_predict_fn(task: Task, mesh, compute_dtype: str = "float32"):
  """Returns predict(state, host_batch) -> host numpy outputs for every row.

  Collective over processes: every process passes the same batch and gets all
  the outputs back, while each row's forward pass runs once, on the devices of
  the process that owns it. So evaluators need no multi-process logic, and
  every example counts exactly once. Rows are padded up to a multiple of the
  batch-axis size and the padding is dropped again: any batch size works.
  """
  gather = mesh_lib.replicated(mesh) if jax.process_count() > 1 else None
  apply = make_apply(task, compute_dtype)

  @functools.partial(jax.jit, out_shardings=gather)
  def forward(params, model_state, batch):
    return apply(_variables(params, model_state), batch, train=False)

  divisor = mesh_lib.batch_divisor(mesh)

  def predict(state: TrainState, batch):
    batch = {k: np.asarray(v) for k, v in batch.items()
             if np.asarray(v).dtype.kind in "biuf"}
    rows = len(next(iter(batch.values())))
    pad = -rows % max(divisor, 1)
    if pad:
      batch = {k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)])
               for k, v in batch.items()}
    share = (rows + pad) // jax.process_count()
    first = jax.process_index() * share
    local = {k: v[first:first + share] for k, v in batch.items()}
    outputs = forward(state.params, state.model_state, mesh_lib.shard_batch(local, mesh))
    return jax.tree.map(lambda x: np.asarray(x)[:rows], outputs)

  return predict
