"""A mask-conditioned image GAN: SPADE generator, spectrally normalised PatchGAN critics.

The generator maps a label map (one-hot) and a noise vector to an image (Park et
al. 2019, SPADE: spatially-adaptive normalisation); the discriminator sees an image
with its label map, at `num_scales` resolutions (pix2pixHD), each a PatchGAN
(Isola et al. 2017) whose convolutions are spectrally normalised (Miyato et al.
2018). `GanModel` holds the generator, its EMA copy (the one that samples) and the
discriminator, so the engine checkpoints them as one set of parameters.
Convolutions take their spatial rank from the input, so the same code serves 3D.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import einops


def _kernel(size: int, x) -> tuple[int, ...]:
  return (size,) * (x.ndim - 2)


def _downsample_labels(onehot, spatial: Sequence[int]):
  """Nearest-neighbour down-sampling of a one-hot map by integer factors (slicing)."""
  factors = [s // t for s, t in zip(onehot.shape[1:-1], spatial)]
  return onehot[(slice(None),) + tuple(slice(None, None, f) for f in factors)]


def _upsample(x):
  """2x nearest up-sampling as repeats: its gradient is a reshape and a sum (a
  gather-based resize's would be a scatter, slow on XLA:CPU)."""
  for axis in range(1, x.ndim - 1):
    x = jnp.repeat(x, 2, axis=axis)
  return x


def _space_to_depth(x):
  """(B, 2h, 2w, C) -> (B, h, w, 4C); any spatial rank."""
  d = x.ndim - 2
  axes = " ".join(f"s{i}" for i in range(d))
  source = " ".join(f"(s{i} p{i})" for i in range(d))
  phases = " ".join(f"p{i}" for i in range(d))
  return einops.rearrange(x, f"b {source} c -> b {axes} ({phases} c)",
                          **{f"p{i}": 2 for i in range(d)})


class Spade(nn.Module):
  """Parameter-free instance norm, then a per-pixel scale and shift from `embedding`,
  the label map's embedding at this resolution (one conv: gamma and beta)."""

  @nn.compact
  def __call__(self, x, embedding):
    features = x.shape[-1]
    normed = nn.GroupNorm(num_groups=None, group_size=1, use_bias=False, use_scale=False,
                          epsilon=1e-5)(x)
    gamma, beta = jnp.split(nn.Conv(2 * features, _kernel(3, x))(embedding), 2, axis=-1)
    return normed * (1 + gamma) + beta


class SpadeResBlock(nn.Module):
  """SPADE -> LeakyReLU -> conv, twice, with a learned (SPADE + 1x1 conv) shortcut.

  The label map is embedded once per block (SPADE's shared conv + ReLU) and that
  embedding feeds each of the block's SPADE layers.
  """

  features: int
  hidden: int = 64

  @nn.compact
  def __call__(self, x, onehot):
    seg = _downsample_labels(onehot, x.shape[1:-1])
    embedding = nn.relu(nn.Conv(self.hidden, _kernel(3, x), name="embed")(seg))
    middle = min(x.shape[-1], self.features)
    h = nn.Conv(middle, _kernel(3, x))(nn.leaky_relu(Spade()(x, embedding), 0.2))
    h = nn.Conv(self.features, _kernel(3, x))(nn.leaky_relu(Spade()(h, embedding), 0.2))
    if x.shape[-1] != self.features:
      x = nn.Conv(self.features, _kernel(1, x), use_bias=False)(Spade()(x, embedding))
    return x + h


class SpadeGenerator(nn.Module):
  """(one-hot label map (B, *spatial, K), noise (B, Z)) -> image (B, *spatial, C) in [0, 1].

  Starts at 1/2^(len(features)-1) of the size from the down-sampled label map and
  the projected noise (SPADE's no-encoder variant), then one SPADE residual block
  per level with nearest 2x up-sampling in between. Sizes that are not multiples of
  2^(levels-1) are padded with background and cropped back.
  """

  out_channels: int
  features: Sequence[int] = (128, 64, 32, 16)
  spade_hidden: int = 32

  @nn.compact
  def __call__(self, onehot, noise):
    spatial = onehot.shape[1:-1]
    multiple = 2 ** (len(self.features) - 1)
    pads = [(0, -s % multiple) for s in spatial]
    if any(hi for _, hi in pads):
      background = jnp.zeros(onehot.shape[-1]).at[0].set(1.0)
      padded = jnp.pad(onehot - background, [(0, 0), *pads, (0, 0)]) + background
    else:
      padded = onehot
    coarse = [s // multiple for s in padded.shape[1:-1]]
    z = nn.Dense(self.features[0])(noise)
    z = jnp.broadcast_to(z[:, *([None] * len(coarse)), :],
                         (z.shape[0], *coarse, self.features[0]))
    x = jnp.concatenate([_downsample_labels(padded, coarse), z], axis=-1)
    x = nn.Conv(self.features[0], _kernel(3, x), name="stem")(x)
    for level, width in enumerate(self.features):
      if level:
        x = _upsample(x)
      x = SpadeResBlock(width, self.spade_hidden)(x, padded)
    x = nn.Conv(self.out_channels, _kernel(3, x), name="to_image")(nn.leaky_relu(x, 0.2))
    crop = (slice(None),) + tuple(slice(0, s) for s in spatial)
    return nn.sigmoid(x)[crop]


class PatchDiscriminator(nn.Module):
  """PatchGAN on (image, label map), spectrally normalised, LeakyReLU; returns (patch
  logits, intermediate features).

  Each layer but the last halves the size as pix2pix's 4^d stride-2 convolution
  does, written as space-to-depth then a 2^d stride-1 convolution (the same
  receptive field and cost): the gradient of a strided convolution with respect to
  its input, which the generator's step needs, is very slow on XLA:CPU.
  """

  features: Sequence[int] = (32, 64, 128)

  @nn.compact
  def __call__(self, x, update_stats: bool):
    feats = []
    for i, width in enumerate(self.features):
      if i < len(self.features) - 1:
        x = _space_to_depth(_pad_to_even(x))
        conv = nn.Conv(width, _kernel(2, x), padding=[(0, 1)] * (x.ndim - 2))
      else:
        conv = nn.Conv(width, _kernel(4, x), padding="SAME")
      x = nn.leaky_relu(nn.SpectralNorm(conv)(x, update_stats=update_stats), 0.2)
      feats.append(x)
    logits = nn.SpectralNorm(nn.Conv(1, _kernel(4, x), padding="SAME"))(
        x, update_stats=update_stats)
    return logits, feats


def _pad_to_even(x):
  pads = [(0, s % 2) for s in x.shape[1:-1]]
  return jnp.pad(x, [(0, 0), *pads, (0, 0)]) if any(hi for _, hi in pads) else x


class MultiScaleDiscriminator(nn.Module):
  """`num_scales` PatchGANs on the input and its 2x, 4x ... average-pooled copies."""

  features: Sequence[int] = (32, 64, 128)
  num_scales: int = 2

  @nn.compact
  def __call__(self, image, onehot, update_stats: bool):
    x = jnp.concatenate([image * 2.0 - 1.0, onehot], axis=-1)
    outputs = []
    for scale in range(self.num_scales):
      if scale:
        window = (2,) * (x.ndim - 2)
        x = nn.avg_pool(x, window, strides=window, padding="SAME")
      outputs.append(PatchDiscriminator(self.features, name=f"scale_{scale}")(
          x, update_stats))
    return outputs


class GanModel(nn.Module):
  """Generator, its EMA twin and discriminator in one parameter tree.

  `__call__` (what the engine's predict step runs) samples with the EMA generator;
  `generate` and `discriminate` are the training-time calls (`method=`).
  """

  num_classes: int
  out_channels: int
  generator_features: Sequence[int] = (128, 64, 32, 16)
  spade_hidden: int = 32
  discriminator_features: Sequence[int] = (32, 64, 128)
  num_scales: int = 2

  def setup(self):
    make = lambda: SpadeGenerator(self.out_channels, self.generator_features,  # noqa: E731
                                  self.spade_hidden)
    self.generator, self.generator_ema = make(), make()
    self.discriminator = MultiScaleDiscriminator(self.discriminator_features,
                                                 self.num_scales)

  def onehot(self, label):
    return jax.nn.one_hot(label, self.num_classes, dtype=jnp.float32)

  def __call__(self, label, noise, train: bool = False):
    del train
    onehot = self.onehot(label)
    fake = self.generator_ema(onehot, noise)
    if self.is_initializing():
      self.generator(onehot, noise)
      self.discriminator(fake, onehot, update_stats=False)
    return fake

  def generate(self, label, noise):
    return self.generator(self.onehot(label), noise)

  def discriminate(self, image, label, update_stats: bool = False):
    return self.discriminator(image, self.onehot(label), update_stats)
