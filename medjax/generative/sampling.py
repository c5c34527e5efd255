"""A trained GAN's EMA generator, loaded from its workdir, as a pure sampling function.

    generator = sampling.load_generator("/runs/gan_lung")
    images = generator.generate(generator.params, labels, key)  # (B, H, W, C) in [0, 1]
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp

from medjax.engine import workdir as workdir_lib
from medjax.engine.errors import InputError


@dataclasses.dataclass
class Generator:
  """The EMA generator of a GAN run (`config.task.data`: the data it was trained on)."""

  config: Any
  module: Any  # models.SpadeGenerator
  params: Any  # host pytree
  num_classes: int
  channels: int
  noise_dim: int

  def generate(self, params, labels, key):
    """Images (B, *spatial, C) in [0, 1] for int label maps (B, *spatial); jit-able."""
    noise = jax.random.normal(key, (labels.shape[0], self.noise_dim))
    onehot = jax.nn.one_hot(labels, self.num_classes, dtype=jnp.float32)
    return self.module.apply({"params": params}, onehot, noise)


def gan_config(workdir: str, flag: str = "config.task.synthetic.workdir"):
  """The saved config of a GAN run, or an InputError naming `flag`."""
  if not workdir or not os.path.isdir(workdir):
    raise InputError(f"{flag}={workdir!r} is not a directory (a GAN run's --workdir)")
  config = workdir_lib.load_config(workdir)
  if config is None or "gan" not in config.get("task", {}):
    raise InputError(f"{flag}={workdir!r} holds no GAN run (no config.json with "
                     "task.gan): train one with `python -m experiments.generative`")
  return config


def load_generator(workdir: str, flag: str = "config.task.synthetic.workdir") -> Generator:
  """The EMA generator of the GAN run in `workdir` (its latest checkpoint)."""
  from medjax.engine import restore  # pylint: disable=import-outside-toplevel
  from medjax.generative import task as gan_task  # pylint: disable=import-outside-toplevel
  config = gan_config(workdir, flag)
  task = gan_task.GanTask(config.task)
  try:
    state, _ = restore.load_for_prediction(config, workdir, task, best=False)
  except InputError as e:
    raise InputError(f"{flag}={workdir!r}: {e}") from None
  step = int(state.step)
  if step < config.total_steps:
    logging.warning("%s: the GAN stopped at step %d of %d (unfinished); sampling from it",
                    workdir, step, config.total_steps)
  else:
    logging.info("GAN of %s: step %d", workdir, step)
  return Generator(config=config, module=gan_task.generator_module(task.model),
                   params=jax.device_get(state.params["generator_ema"]),
                   num_classes=config.task.data.num_classes,
                   channels=task.model.out_channels, noise_dim=config.task.gan.noise_dim)
