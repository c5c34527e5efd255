"""GAN objectives: hinge and non-saturating adversarial losses, feature matching.

Every loss takes `weight` (B,), the batch's `_mask`, so padded rows never count.
Discriminator outputs are lists over scales of (patch logits, features).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

ADVERSARIAL = ("hinge", "non_saturating")


def _per_example(x):
  return jnp.mean(x.reshape(x.shape[0], -1), axis=1)


def _weighted(values, weight):
  return jnp.sum(values * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def weighted_mean(values, weight):
  """Mean over each row's entries, then over rows weighted by `weight`."""
  return _weighted(_per_example(values), weight)


def discriminator_loss(real_logits, fake_logits, weight, kind: str = "hinge"):
  """Mean over scales: hinge E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], or the
  logistic (non-saturating GAN) softplus(-D(x)) + softplus(D(G(z)))."""
  total = 0.0
  for real, fake in zip(real_logits, fake_logits):
    if kind == "hinge":
      per = _per_example(jax.nn.relu(1.0 - real)) + _per_example(jax.nn.relu(1.0 + fake))
    else:
      per = _per_example(jax.nn.softplus(-real)) + _per_example(jax.nn.softplus(fake))
    total += _weighted(per, weight)
  return total / len(real_logits)


def generator_loss(fake_logits, weight, kind: str = "hinge"):
  """Mean over scales: hinge -E[D(G(z))], or non-saturating softplus(-D(G(z)))."""
  total = 0.0
  for fake in fake_logits:
    per = _per_example(-fake if kind == "hinge" else jax.nn.softplus(-fake))
    total += _weighted(per, weight)
  return total / len(fake_logits)


def feature_matching(real_features, fake_features, weight):
  """Discriminator feature matching (pix2pixHD): mean L1 between the features of a
  real image and of the image generated from its label map, averaged over layers
  and scales (pix2pixHD sums over layers: its weight 10 is ~this mean's 30-40).
  The real features carry no gradient."""
  total, count = 0.0, 0
  for real_scale, fake_scale in zip(real_features, fake_features):
    for real, fake in zip(real_scale, fake_scale):
      total += _weighted(_per_example(jnp.abs(jax.lax.stop_gradient(real) - fake)), weight)
      count += 1
  return total / max(count, 1)


def batch_spread(images, weight):
  """Mean over pixels of the standard deviation across the (real) batch rows: near
  zero when every sample is the same image (mode collapse)."""
  w = weight.reshape((-1,) + (1,) * (images.ndim - 1))
  n = jnp.maximum(jnp.sum(weight), 1.0)
  mean = jnp.sum(images * w, axis=0) / n
  return jnp.mean(jnp.sqrt(jnp.sum(w * (images - mean) ** 2, axis=0) / n + 1e-12))
