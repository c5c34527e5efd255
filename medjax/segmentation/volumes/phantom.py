"""Synthetic MRI-like volumes with two labelled structures, generated from a seed.

Each case: a head-like ellipsoid of tissue in air, and inside it an elongated
structure cut in two along its long axis (label 1 = anterior part, label 2 =
posterior part, as MSD Hippocampus labels head and body), with a smooth bias
field and Gaussian noise. The two parts differ in intensity from each other and
from the tissue around them, so a small 3D U-Net learns them in a few hundred
steps. The affine is LPS-like (x and y flipped) with anisotropic voxels, so the
reorientation and resampling paths of `geometry` are exercised too.
"""

from __future__ import annotations

import numpy as np

from medjax.segmentation.volumes.volume import Volume

SPACING = (1.0, 1.0, 1.5)  # mm


def _affine(shape, spacing=SPACING) -> np.ndarray:
  """x and y flipped (voxel i grows towards -x world), origin at the volume centre."""
  affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
  affine[:3, 3] = -affine[:3, :3] @ (np.asarray(shape, float) / 2)
  return affine


def _coords(shape, spacing=SPACING):
  """World-size (mm) coordinates of voxel centres about the volume centre."""
  axes = [(np.arange(n) - n / 2 + 0.5) * s for n, s in zip(shape, spacing)]
  return np.meshgrid(*axes, indexing="ij")


def _structure(x, y, z, rng):
  """Labels 1 and 2: an ellipsoid of random pose split at its centre along x."""
  centre = rng.uniform(-3, 3, 3)
  radii = rng.uniform([7, 3, 3], [10, 5, 5])
  angle = rng.uniform(-0.4, 0.4)
  c, s = np.cos(angle), np.sin(angle)
  dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
  u, v = c * dx + s * dy, -s * dx + c * dy
  inside = (u / radii[0])**2 + (v / radii[1])**2 + (dz / radii[2])**2 <= 1
  label = np.zeros(x.shape, np.uint8)
  label[inside & (u >= 0)] = 1
  label[inside & (u < 0)] = 2
  return label


def phantom_case(seed: int, shape=(32, 40, 24)) -> tuple[Volume, Volume]:
  """(image (X, Y, Z, 1) float32, label (X, Y, Z) uint8) for one seed."""
  rng = np.random.default_rng(seed)
  x, y, z = _coords(shape)
  head = (x / 15)**2 + (y / 19)**2 + (z / 17)**2 <= 1
  label = _structure(x, y, z, rng)
  image = np.where(head, 100.0, 0.0)
  image[label == 1] = rng.uniform(150, 170)
  image[label == 2] = rng.uniform(40, 60)
  bias = 1 + 0.1 * np.sin(x / 9 + rng.uniform(0, 6)) * np.cos(y / 11 + rng.uniform(0, 6))
  image = np.where(head, image * bias + rng.normal(0, 8, shape), 0.0)
  affine = _affine(shape)
  return (Volume(image[..., None].astype(np.float32), affine, path=f"phantom_{seed:04d}"),
          Volume(label, affine, path=f"phantom_{seed:04d}_label"))
