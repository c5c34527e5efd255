"""Synthetic chest CT slices with lung labels, generated from a seed (no download).

Each slice: air outside the body (-1000 HU), an elliptical body of soft tissue
(~+40 HU) with a spine (~+700 HU), two lungs (~-850 HU) of random size, position
and lobed shape left and right of the mediastinum, vessels and nodules of soft
tissue inside the lungs, and Gaussian noise. The label is the lungs (vessels and
nodules inside them included, as in clinical lung masks).
"""

from __future__ import annotations

import numpy as np

AIR_HU, TISSUE_HU, LUNG_HU, BONE_HU = -1000.0, 40.0, -850.0, 700.0


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
  """Pixel-centre coordinates in [-1, 1]: (y, x), each (size, size)."""
  t = (np.arange(size) + 0.5) / size * 2 - 1
  return np.meshgrid(t, t, indexing="ij")


def _lobed_ellipse(y, x, centre, radii, angle, lobes) -> np.ndarray:
  """Ellipse whose radius is modulated by `sum a_k cos(k phi + p_k)` (random lobes)."""
  c, s = np.cos(angle), np.sin(angle)
  dy, dx = y - centre[0], x - centre[1]
  u, v = (c * dx + s * dy) / radii[1], (-s * dx + c * dy) / radii[0]
  phi = np.arctan2(v, u)
  scale = 1 + sum(a * np.cos(k * phi + p) for k, a, p in lobes)
  return u**2 + v**2 <= scale**2


def _disks(y, x, rng, region: np.ndarray, count: int, radius: tuple[float, float]):
  """Union of `count` disks centred at random pixels of `region`."""
  out = np.zeros_like(region)
  ys, xs = np.nonzero(region)
  for _ in range(count if ys.size else 0):
    i = rng.integers(ys.size)
    r = rng.uniform(*radius)
    out |= (y - y[ys[i], xs[i]])**2 + (x - x[ys[i], xs[i]])**2 <= r**2
  return out


def _lungs(y, x, rng, body_radii) -> np.ndarray:
  """Two lobed lungs inside the body, one each side of a mediastinal gap."""
  lungs = np.zeros_like(y, dtype=bool)
  inside = _lobed_ellipse(y, x, (0, 0), 0.85 * np.asarray(body_radii), 0.0, ())
  for side in (-1, 1):
    radii = (body_radii[0] * rng.uniform(0.45, 0.75), body_radii[1] * rng.uniform(0.22, 0.4))
    centre = (rng.uniform(-0.15, 0.1) * body_radii[0],
              side * body_radii[1] * rng.uniform(0.38, 0.55))
    lobes = [(k, rng.uniform(0, 0.12), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4)]
    lung = _lobed_ellipse(y, x, centre, radii, rng.uniform(-0.3, 0.3), lobes)
    lungs |= lung & inside & (side * x > rng.uniform(0.04, 0.1))
  return lungs


def phantom_slice(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
  """One slice: (image (size, size) int16 HU, label (size, size) uint8 lungs)."""
  y, x = _grid(size)
  body_radii = (rng.uniform(0.55, 0.75), rng.uniform(0.75, 0.92))
  body = _lobed_ellipse(y, x, (rng.uniform(-0.08, 0.08), rng.uniform(-0.05, 0.05)), body_radii,
                        rng.uniform(-0.1, 0.1), [(2, rng.uniform(0, 0.05), 0.0)])
  lungs = _lungs(y, x, rng, body_radii)
  image = np.where(body, TISSUE_HU + rng.normal(0, 10), AIR_HU)
  spine = (y - 0.7 * body_radii[0])**2 + x**2 <= (0.15 * body_radii[0])**2
  image = np.where(spine & body, BONE_HU, image)
  image = np.where(lungs, LUNG_HU + rng.normal(0, 30), image)
  vessels = _disks(y, x, rng, lungs, rng.integers(3, 12), (0.008, 0.025))
  nodules = _disks(y, x, rng, lungs, rng.integers(0, 3), (0.02, 0.06))
  image = np.where((vessels | nodules) & lungs, TISSUE_HU, image)
  image = image + rng.normal(0, rng.uniform(20, 40), image.shape)
  image = np.clip(np.round(image), -1024, 3071).astype(np.int16)
  return image, lungs.astype(np.uint8)


def phantom_examples(seed: int, stream: int, count: int, size: int):
  """Yields `(index, image, label)`; example `i` depends only on (seed, stream, i)."""
  for i in range(count):
    rng = np.random.default_rng([seed, stream, i])
    image, label = phantom_slice(rng, size)
    yield i, image, label
