"""Optimiser and learning-rate schedule from `config.optimizer`."""

from __future__ import annotations

import optax

from medjax.engine.errors import InputError


def make_schedule(opt_config, total_steps: int) -> optax.Schedule:
  lr, warmup = opt_config.learning_rate, opt_config.warmup_steps
  if opt_config.schedule == "constant":
    main = optax.constant_schedule(lr)
  elif opt_config.schedule == "cosine":
    main = optax.cosine_decay_schedule(lr, max(total_steps - warmup, 1))
  else:
    raise InputError(f"config.optimizer.schedule: unknown {opt_config.schedule!r} "
                     "(known: cosine, constant)")
  if warmup:
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])
  return main


def make_optimizer(opt_config, total_steps: int):
  """Returns (optax transformation, learning-rate schedule)."""
  schedule = make_schedule(opt_config, total_steps)
  name = opt_config.name
  if name == "adamw":
    tx = optax.adamw(schedule, weight_decay=opt_config.weight_decay)
  elif name == "adam":
    tx = optax.adam(schedule)
  elif name == "sgd":
    tx = optax.sgd(schedule, momentum=opt_config.momentum)
  else:
    raise InputError(f"config.optimizer.name: unknown {name!r} (known: adamw, adam, sgd)")
  if opt_config.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(opt_config.grad_clip_norm), tx)
  return tx, schedule


def partitioned(transforms) -> optax.GradientTransformation:
  """One optimiser over a dict of parameter groups, each group with its own
  transformation (a GAN's generator and discriminator, with their own learning
  rates and betas). `update(grads, state, params)` with gradients for some groups
  only updates those groups and leaves the others' state untouched, so a task's
  `update` can step the groups in turn; it returns updates for those groups."""
  def init(params):
    return {name: tx.init(params[name]) for name, tx in transforms.items()}

  def update(grads, state, params=None):
    updates, new_state = {}, dict(state)
    for name, group in grads.items():
      group_params = None if params is None else params[name]
      updates[name], new_state[name] = transforms[name].update(group, state[name],
                                                               group_params)
    return updates, new_state
  return optax.GradientTransformation(init, update)
