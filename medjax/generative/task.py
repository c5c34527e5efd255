"""The GAN task: a mask-conditioned generator and its discriminator on the shared engine.

Built from `config.task` (experiments/configs/generative.py): `task.data` is a
segmentation task config (the same data, k-shot subset, preprocessing and
augmentation the segmentation task uses), `task.gan` the models and recipe. The
engine's `Task.optimizer` / `init_extra` / `update` extension points carry the two
optimisers (TTUR: its own Adam for each network), the discriminator step then the
generator step in one jitted update, and the generator's EMA; everything else
(mesh, checkpoints, resume, SIGTERM, NaN stop, writers) is the engine's.
"""

from __future__ import annotations

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from medjax.engine import optim
from medjax.engine.errors import InputError
from medjax.engine.task import Task
from medjax.generative import losses
from medjax.generative import models
from medjax.generative import samples
from medjax.segmentation import task as seg_task


def make_model(task_config, out_channels: int) -> models.GanModel:
  g = task_config.gan
  return models.GanModel(task_config.data.num_classes, out_channels,
                         tuple(g.generator_features), g.spade_hidden,
                         tuple(g.discriminator_features), g.num_scales)


def generator_module(model: models.GanModel) -> models.SpadeGenerator:
  """A stand-alone generator with `model`'s architecture (applies to its params)."""
  return models.SpadeGenerator(model.out_channels, tuple(model.generator_features),
                               model.spade_hidden)


class GanTask(Task):
  """Trains `GanModel` on the (image, mask) pairs of a segmentation dataset."""

  native_precision = True  # float32 throughout (the update applies the model itself)

  def __init__(self, task_config, workdir: str | None = None):
    g = task_config.gan
    if g.loss not in losses.ADVERSARIAL:
      raise InputError(f"config.task.gan.loss: unknown {g.loss!r} (known: "
                       f"{losses.ADVERSARIAL})")
    self.config, self.workdir = task_config, workdir
    self.data = seg_task.SegmentationTask(task_config.data)
    self.model = make_model(task_config, self.data.in_channels())

  # -- data: the segmentation task's ------------------------------------------------

  def train_dataset(self, batch_size, seed, shard_index=0, shard_count=1):
    return self.data.train_dataset(batch_size, seed, shard_index, shard_count)

  def model_inputs(self, batch):
    return {"label": batch["label"], "noise": batch["noise"]}

  def example_batch(self, batch_size):
    size = self.data.example_batch(batch_size)["image"].shape[1:-1]
    return {"label": np.zeros((batch_size, *size), np.int32),
            "noise": np.zeros((batch_size, self.config.gan.noise_dim), np.float32)}

  def loss(self, outputs, batch):
    """The evaluators' loss: mean |EMA generator(label) - real image| (L1)."""
    l1 = jnp.mean(jnp.abs(outputs - batch["image"]), axis=tuple(range(1, outputs.ndim)))
    weight = batch.get("_mask", jnp.ones(l1.shape[0]))
    return jnp.sum(l1 * weight) / jnp.maximum(jnp.sum(weight), 1.0), {}

  def evaluators(self):
    return self._evaluators

  @functools.cached_property
  def _evaluators(self):
    """Built once: the sample evaluator keeps its preprocessed label maps between
    evaluations (the engine asks for the evaluators at each one)."""
    split = self.config.data.eval_splits[0] if self.config.data.eval_splits else None
    if split is None:
      return []
    return [samples.SampleEvaluator(split, self.data.eval_sources[split], self.data.preprocess,
                                    self.config, self.workdir)]

  # -- training: two optimisers, D step then G step, EMA ------------------------------

  def optimizer(self, optimizer_config, total_steps):
    del optimizer_config, total_steps
    g = self.config.gan
    b1, b2 = g.betas
    schedule = optax.constant_schedule(g.g_learning_rate)
    tx = optim.partitioned({
        "generator": optax.adam(schedule, b1=b1, b2=b2),
        "discriminator": optax.adam(g.d_learning_rate, b1=b1, b2=b2),
        "generator_ema": optax.set_to_zero()})
    return tx, schedule

  def update(self, state, batch, key, ctx):
    aug_key, noise_key = jax.random.split(key)
    batch = self.data.augment(batch, aug_key)
    noise = jax.random.normal(noise_key, (batch["label"].shape[0], self.config.gan.noise_dim))
    weight = batch["_mask"].astype(jnp.float32)
    state, d_metrics = self._discriminator_step(state, batch, noise, weight, ctx)
    state, g_metrics = self._generator_step(state, batch, noise, weight, ctx)
    return state, {**d_metrics, **g_metrics, "loss": d_metrics["d_loss"] + g_metrics["g_loss"]}

  def _apply(self, params, model_state, method, *args, **kw):
    return self.model.apply({"params": params, **model_state}, *args, method=method, **kw)

  def _discriminator_step(self, state, batch, noise, weight, ctx):
    fake = jax.lax.stop_gradient(self._apply(state.params, state.model_state,
                                             models.GanModel.generate, batch["label"], noise))
    kind = self.config.gan.loss
    rows = batch["label"].shape[0]

    def loss_fn(d_params, batch):
      params = {**state.params, "discriminator": d_params}
      outputs, new_state = self._apply(
          params, state.model_state, models.GanModel.discriminate,
          jnp.concatenate([batch["image"], fake]),
          jnp.concatenate([batch["label"], batch["label"]]), update_stats=True, mutable=["batch_stats"])
      real = [logits[:rows] for logits, _ in outputs]
      fakes = [logits[rows:] for logits, _ in outputs]
      loss = losses.discriminator_loss(real, fakes, weight, kind)
      return loss, (new_state, jnp.mean(real[0]), jnp.mean(fakes[0]))

    (loss, (new_state, d_real, d_fake)), grads = ctx.value_and_grad(
        loss_fn, state.params["discriminator"], batch)
    state = self._step_group(state, "discriminator", grads, ctx)
    state = state.replace(model_state=flax.core.unfreeze(new_state))
    return state, {"d_loss": loss, "d_real_logit": d_real, "d_fake_logit": d_fake,
                   "d_grad_norm": optax.tree.norm(grads)}

  def _generator_step(self, state, batch, noise, weight, ctx):
    g = self.config.gan

    def loss_fn(g_params, batch):
      params = {**state.params, "generator": g_params}
      fake = self._apply(params, state.model_state, models.GanModel.generate,
                         batch["label"], noise)
      both = self._apply(params, state.model_state, models.GanModel.discriminate,
                         jnp.concatenate([batch["image"], fake]),
                         jnp.concatenate([batch["label"], batch["label"]]))
      rows = fake.shape[0]
      adversarial = losses.generator_loss([logits[rows:] for logits, _ in both], weight,
                                          g.loss)
      matching = losses.feature_matching([[f[:rows] for f in feats] for _, feats in both],
                                         [[f[rows:] for f in feats] for _, feats in both],
                                         weight)
      l1 = losses.weighted_mean(jnp.abs(fake - batch["image"]), weight)
      loss = adversarial + g.feature_matching * matching + g.l1 * l1
      return loss, (adversarial, matching, l1, losses.batch_spread(fake, weight) /
                    (losses.batch_spread(batch["image"], weight) + 1e-6))

    (loss, (adversarial, matching, l1, spread)), grads = ctx.value_and_grad(
        loss_fn, state.params["generator"], batch)
    state = self._step_group(state, "generator", grads, ctx)
    state = state.replace(params={**state.params, "generator_ema": self._ema(state)})
    return state, {"g_loss": loss, "g_adversarial": adversarial, "g_feature_matching": matching,
                   "g_l1": l1, "sample_spread": spread, "g_grad_norm": optax.tree.norm(grads),
                   "learning_rate": ctx.schedule(state.step)}

  def _step_group(self, state, group, grads, ctx):
    updates, opt_state = ctx.tx.update({group: grads}, state.opt_state, state.params)
    params = {**state.params, group: optax.apply_updates(state.params[group], updates[group])}
    return state.replace(params=params, opt_state=opt_state)

  def _ema(self, state):
    """EMA of the generator (decay warmed up as (1+t)/(10+t)); step 0 copies it."""
    t = state.step.astype(jnp.float32)
    decay = jnp.where(state.step == 0, 0.0,
                      jnp.minimum(self.config.gan.ema_decay, (1.0 + t) / (10.0 + t)))
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p,
                        state.params["generator_ema"], state.params["generator"])

  def divergence(self, metrics: dict[str, float]) -> str | None:
    """Divergence or mode collapse in the mean training metrics since the last log."""
    d = self.config.gan.divergence
    if metrics.get("d_loss", np.inf) < d.d_loss_floor:
      return (f"discriminator loss {metrics['d_loss']:.2e} < {d.d_loss_floor:g}: the "
              "discriminator separates real and generated images outright (divergence)")
    if metrics.get("sample_spread", np.inf) < d.spread_floor:
      return (f"generated images vary {metrics['sample_spread']:.3f}x as much across the "
              f"batch as real ones (< {d.spread_floor:g}): mode collapse")
    return None
