"""Synthetic grey 2D images of two classes, blobs (0) and rings (1), from a seed."""

from __future__ import annotations

import numpy as np

CLASSES = ("blob", "ring")


def shape_image(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
  """(size, size) uint8: a filled disk (label 0) or a ring (label 1) of random centre
  and radius on a noisy background."""
  t = np.arange(size) + 0.5
  y, x = np.meshgrid(t, t, indexing="ij")
  radius = rng.uniform(0.18, 0.3) * size
  cy, cx = rng.uniform(radius + 1, size - radius - 1, 2)
  distance = np.hypot(y - cy, x - cx)
  shape = distance <= radius
  if label == 1:
    shape &= distance >= radius * rng.uniform(0.45, 0.65)
  image = 60 + 140 * shape + rng.normal(0, 20, (size, size))
  return np.clip(np.round(image), 0, 255).astype(np.uint8)


def shape_examples(seed: int, stream: int, count: int, size: int):
  """`count` (index, image (size, size, 1) uint8, label) tuples; classes alternate."""
  rng = np.random.default_rng([seed, stream])
  for i in range(count):
    label = i % 2
    yield i, shape_image(rng, label, size)[..., None], label
