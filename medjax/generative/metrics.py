"""Distances between feature sets of real and generated images (host side, numpy).

    mean, std = metrics.kid(real, fake)       # features (N, D), (M, D)
    distance = metrics.fid(real, fake)
    precision, recall = metrics.precision_recall(real, fake, k=3)

KID (Bińkowski et al., 2018) is the unbiased MMD^2 with the kernel
k(x, y) = (x.y / D + 1)^3, averaged over random subsets as torch-fidelity and
clean-fid compute it; unlike FID it has an unbiased estimator, so it is the one
to compare across sample sizes. Improved precision / recall (Kynkäänniemi et al.,
2019): precision is the fraction of generated samples inside the real manifold
(the union of balls around each real sample reaching its k-th nearest real
neighbour), recall the fraction of real samples inside the generated manifold.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from medjax.engine.errors import InputError

_CHUNK = 1024  # rows of a pairwise-distance block


def _features(real, fake, minimum: int, what: str) -> tuple[np.ndarray, np.ndarray]:
  """Both sets as float64 (N, D) arrays of the same D, each with >= `minimum` rows."""
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
    raise InputError(f"{what}: expected features (N, D) and (M, D), got {real.shape} "
                     f"and {fake.shape}")
  for name, x in (("real", real), ("generated", fake)):
    if len(x) < minimum:
      raise InputError(f"{what} needs at least {minimum} {name} samples, got {len(x)}")
  return real, fake


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD^2 of two equal-sized sets under the cubic polynomial kernel."""
  m = len(x)
  kxx, kyy, kxy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
  within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
  return float(within - 2.0 * kxy.mean())


def kid(real, fake, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
  """(mean, std) of the unbiased MMD^2 over `subsets` random subsets of each set,
  drawn without replacement, of min(subset_size, len(real), len(fake)) samples.

  When both sets are that small, every "subset" is a whole set and the spread would
  be 0: the mean is then the whole sets' MMD^2 and the std is that of half-size
  subsets (an upper bound on the whole-set estimate's).
  """
  real, fake = _features(real, fake, 2, "KID")
  m = min(subset_size, len(real), len(fake))
  if m < 2:
    raise InputError(f"KID: subset_size must be at least 2, got {subset_size}")
  rng = np.random.default_rng(seed)

  def draws(size):
    return [mmd2_unbiased(fake[rng.choice(len(fake), size, replace=False)],
                          real[rng.choice(len(real), size, replace=False)])
            for _ in range(subsets)]
  if m == len(real) == len(fake):
    return mmd2_unbiased(fake, real), float(np.std(draws(max(2, m // 2))))
  values = draws(m)
  return float(np.mean(values)), float(np.std(values))


def _sqrtm(a: np.ndarray) -> np.ndarray:
  """scipy's matrix square root, quiet about singular input: covariances of fewer
  samples than feature dimensions are singular, and their root is still accurate."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
    return scipy.linalg.sqrtm(a)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) of two Gaussians."""
  mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
  sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
  covmean = _sqrtm(sigma1 @ sigma2)
  if not np.all(np.isfinite(covmean)):  # singular product: offset both (as pytorch-fid)
    offset = np.eye(len(sigma1)) * 1e-6
    covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
  covmean = np.real(covmean)
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid(real, fake) -> float:
  """Fréchet distance between Gaussians fitted to the two feature sets (sample
  covariance, ddof=1)."""
  real, fake = _features(real, fake, 2, "FID")
  return frechet_distance(real.mean(0), np.cov(real, rowvar=False),
                          fake.mean(0), np.cov(fake, rowvar=False))


def _squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
  return np.maximum(d, 0.0)


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
  """Distance from each row of x to its k-th nearest other row."""
  radii = np.empty(len(x))
  for start in range(0, len(x), _CHUNK):
    d = _squared_distances(x[start:start + _CHUNK], x)
    # Column 0 of the sorted row is the point itself (distance 0).
    radii[start:start + _CHUNK] = np.sqrt(np.partition(d, k, axis=1)[:, k])
  return radii


def coverage_fraction(manifold: np.ndarray, radii: np.ndarray, queries: np.ndarray) -> float:
  """Fraction of `queries` within radii[i] of some manifold[i]."""
  inside = np.zeros(len(queries), bool)
  squared = radii ** 2
  for start in range(0, len(queries), _CHUNK):
    d = _squared_distances(queries[start:start + _CHUNK], manifold)
    inside[start:start + _CHUNK] = np.any(d <= squared[None, :], axis=1)
  return float(inside.mean())


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
  """Improved (precision, recall) with k-nearest-neighbour manifolds in feature space."""
  if k < 1:
    raise InputError(f"precision/recall: k must be at least 1, got {k}")
  real, fake = _features(real, fake, k + 1, f"precision/recall with k={k}")
  precision = coverage_fraction(real, knn_radii(real, k), fake)
  recall = coverage_fraction(fake, knn_radii(fake, k), real)
  return precision, recall
