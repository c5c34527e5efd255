"""The feature space of generated-sample metrics: a segmentation U-Net trained here.

    feature_fn = features.unet_features(seg_config, seg_workdir)
    feats = feature_fn(images)  # (B, H, W, C) in the preprocessing range -> (B, D)

Each encoder level's output (the first len(features) ConvBlocks of `unet.UNet`,
collected with flax `capture_intermediates`) is averaged over space and the
levels are concatenated: D = sum(features). No ImageNet network is downloaded;
the features are those of a model that has learnt this anatomy.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from medjax.engine import restore
from medjax.engine import workdir as workdir_lib
from medjax.engine.errors import InputError
from medjax.explain import loading
from medjax.segmentation import unet


def encoder_names(model: unet.UNet) -> list[str]:
  """Flax names of the encoder ConvBlocks (created first, one per level)."""
  return [f"ConvBlock_{i}" for i in range(len(model.features))]


def _is_encoder_block(names):
  return lambda module, method: isinstance(module, unet.ConvBlock) and module.name in names


def encoder_outputs(model: unet.UNet, variables, images) -> list[jax.Array]:
  """Each encoder level's output (B, *spatial_i, features[i]), evaluation mode."""
  names = encoder_names(model)
  _, state = model.apply(variables, images, train=False,
                         capture_intermediates=_is_encoder_block(set(names)),
                         mutable=["intermediates"])
  captured = state["intermediates"]
  return [captured[name]["__call__"][0] for name in names]


def pooled_encoder(model: unet.UNet, variables) -> Callable:
  """jit-compiled images (B, H, W, C) -> (B, sum(features)) float32: every encoder
  level averaged over space, concatenated (shallowest first)."""

  @jax.jit
  def apply(variables, images):
    levels = encoder_outputs(model, variables, images)
    spatial = tuple(range(1, images.ndim - 1))
    return jnp.concatenate([jnp.mean(x.astype(jnp.float32), axis=spatial) for x in levels],
                           axis=-1)

  variables = jax.device_put(variables)  # once, not with every batch
  return lambda images: apply(variables, jnp.asarray(images, jnp.float32))


def _run_config(seg_config, seg_workdir: str):
  """The segmentation run's config: `seg_config` with the workdir's saved task, or
  the saved config itself when `seg_config` is None."""
  from medjax.segmentation import task as task_lib  # pylint: disable=import-outside-toplevel
  workdir_lib.require_existing(seg_workdir, "the segmentation workdir",
                               "a trained segmentation run")
  if seg_config is not None:
    return task_lib.config_for_prediction(seg_config, seg_workdir)
  saved = workdir_lib.load_config(seg_workdir)
  if saved is None:
    raise InputError(f"{seg_workdir} has no {workdir_lib.CONFIG_FILE}: give the "
                     "segmentation run's config as well")
  return saved


def unet_features(seg_config, seg_workdir: str) -> Callable:
  """images (B, H, W, C) float32 -> (B, sum(features)) pooled encoder features of the
  best checkpoint (else the latest) of the 2D U-Net trained in `seg_workdir`.

  `seg_config` is that run's config (its task fields are read from the workdir's
  saved config.json, as for prediction); None takes the saved config whole.
  """
  from medjax.segmentation import task as task_lib  # pylint: disable=import-outside-toplevel
  config = _run_config(seg_config, seg_workdir)
  t = config.task
  if t.spatial_dims != 2 or t.model.get("name", "unet") != "unet":
    raise InputError(f"{seg_workdir}: sample features need a 2D U-Net run "
                     f"(task.model.name='unet', spatial_dims=2), got "
                     f"{t.model.get('name', 'unet')!r} with spatial_dims={t.spatial_dims}")
  task = task_lib.make_task(t)  # float32 activations whatever the run trained with
  state, _ = restore.load_for_prediction(config, seg_workdir, task)
  return pooled_encoder(task.model, loading.variables_of(state))
