"""GAN configs: `--config=experiments/configs/generative.py:<preset>`.

A mask-conditioned GAN (SPADE generator, multi-scale spectrally normalised PatchGAN,
hinge loss, feature matching, TTUR Adam(0, 0.999), generator EMA) trained on the
(image, mask) pairs of a segmentation dataset. `task.data` is that segmentation
preset's task config (dataset, k-shot `train_count`, preprocessing, crops), so
`--config.task.data.train_count=16` trains the GAN on the same 16 images as a
segmentation run with `--config.task.train_count=16`.

Presets: quick (the segmentation quick preset's CT phantom, 96x96), lung_ct (shared lung_ct_2d, 128x128
crops), drive (DRIVE green channel, 96x96 patches).
"""

import ml_collections

from experiments.configs import segmentation
from medjax.engine.config import base_config


def gan_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      generator_features=(64, 32, 16, 16),  # per level, coarse to fine (2x each)
      spade_hidden=16,  # channels of SPADE's label-map embedding
      discriminator_features=(16, 32, 64),  # per PatchGAN layer
      num_scales=2,  # discriminators at 1x, 1/2x ... (pix2pixHD)
      noise_dim=64,
      loss="hinge",  # hinge | non_saturating
      feature_matching=10.0,  # weight of discriminator feature matching (pix2pixHD)
      l1=0.0,  # weight of L1 to the real image of the same mask (pix2pix); 0: none
      g_learning_rate=1e-4,  # TTUR (Heusel et al. 2017; SPADE's rates and betas)
      d_learning_rate=4e-4,
      betas=(0.0, 0.999),
      ema_decay=0.999,  # generator EMA; it draws the samples
      samples=8,  # validation label maps drawn at every evaluation (samples/*.png)
      # Stop (keeping the last good checkpoint) when, averaged over a log interval,
      # the discriminator loss falls below d_loss_floor or the generated images vary
      # across the batch less than spread_floor x the real ones (mode collapse).
      divergence=ml_collections.ConfigDict(dict(d_loss_floor=1e-3, spread_floor=0.05)),
  ))


def _data(preset: str, **overrides) -> ml_collections.ConfigDict:
  data = segmentation.get_config(preset).task
  data.update(overrides)
  return data


def _quick(c):
  c.task.data = _data("quick")  # the segmentation quick preset's phantom (96x96)
  c.task.gan.generator_features = (32, 16, 8)
  c.task.gan.discriminator_features = (8, 16, 32)
  c.batch_size = 8
  c.total_steps = 200
  c.log_every = 25
  c.eval_every = 100
  c.checkpoint_every = 100


def _lung_ct(c):
  """Sized for a CPU (~1 s a step on 2 cores); on a GPU widen the networks."""
  c.task.data = _data("lung_ct", patch_size=(128, 128))
  c.batch_size = 4
  c.total_steps = 800
  c.eval_every = 400
  c.checkpoint_every = 200


def _drive(c):
  c.task.data = _data("drive")  # its 96x96 patches
  c.batch_size = 4
  c.total_steps = 800
  c.eval_every = 400
  c.checkpoint_every = 200


PRESETS = {"quick": _quick, "lung_ct": _lung_ct, "drive": _drive}


def get_config(preset: str = "quick") -> ml_collections.ConfigDict:
  if preset not in PRESETS:
    raise ValueError(f"unknown generative preset {preset!r}; known: {sorted(PRESETS)}")
  c = base_config()
  c.task = ml_collections.ConfigDict(dict(gan=gan_config()))
  c.optimizer.schedule = "constant"  # the GAN's optimisers are task.gan's (TTUR)
  c.log_every = 50
  PRESETS[preset](c)
  return c
