"""generative.metrics against direct loops, closed forms and sklearn neighbours."""

import numpy as np
import pytest
import scipy.linalg
from sklearn.neighbors import NearestNeighbors

from medjax.engine.errors import InputError
from medjax.generative import metrics


def _mmd2_loops(x, y):
  """Unbiased MMD^2 (Gretton et al. 2012, eq. 3 with m = n) by a double loop."""
  d = x.shape[1]
  k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3
  m = len(x)
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
  return xx + yy - 2 * xy


def test_mmd_matches_a_double_loop():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(5, 3)), rng.normal(1.0, 2.0, size=(5, 3))
  np.testing.assert_allclose(metrics.mmd2_unbiased(x, y), _mmd2_loops(x, y), rtol=1e-12)


def test_kid_with_whole_sets_is_one_mmd_and_subsets_are_drawn_without_replacement():
  rng = np.random.default_rng(1)
  real, fake = rng.normal(size=(6, 4)), rng.normal(0.5, 1.0, size=(9, 4))
  # subset_size is capped at 6: the whole real set each time, 6 of the 9 generated ones.
  mean, std = metrics.kid(real, fake, subsets=7, subset_size=50, seed=3)
  draws = np.random.default_rng(3)
  want = []
  for _ in range(7):
    f = fake[draws.choice(9, 6, replace=False)]
    r = real[draws.choice(6, 6, replace=False)]
    want.append(_mmd2_loops(f, r))
  np.testing.assert_allclose([mean, std], [np.mean(want), np.std(want)], rtol=1e-10)
  same, _ = metrics.kid(real, real[::-1], subsets=3)
  np.testing.assert_allclose(same, _mmd2_loops(real, real), atol=1e-12)


def test_kid_is_near_zero_for_one_distribution_and_large_for_two():
  rng = np.random.default_rng(2)
  a, b = rng.normal(size=(200, 8)), rng.normal(size=(200, 8))
  near, spread = metrics.kid(a, b, subsets=20, subset_size=100)
  far, _ = metrics.kid(a, b + 1.0, subsets=20, subset_size=100)
  assert abs(near) < 3 * spread + 0.05 and far > 50 * abs(near) and far > 1.0


def _exact_samples(rng, mean, cov, n):
  """n samples whose sample mean and covariance (ddof=1) are exactly `mean`, `cov`."""
  z = rng.normal(size=(n, len(mean)))
  z -= z.mean(0)
  z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
  return z @ np.linalg.cholesky(cov).T + mean


def test_fid_equals_the_closed_form_of_the_fitted_gaussians():
  rng = np.random.default_rng(3)
  mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
  var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 1.0])
  real = _exact_samples(rng, mu1, np.diag(var1), 50)
  fake = _exact_samples(rng, mu2, np.diag(var2), 40)
  # Diagonal covariances: FID = |mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2.
  want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
  np.testing.assert_allclose(metrics.fid(real, fake), want, rtol=1e-8)
  assert abs(metrics.fid(real, real)) < 1e-8


def test_frechet_distance_of_non_commuting_covariances():
  rng = np.random.default_rng(4)
  a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
  s1, s2 = a @ a.T + np.eye(4), b @ b.T + 0.5 * np.eye(4)
  # tr (S1 S2)^(1/2) = tr (S1^(1/2) S2 S1^(1/2))^(1/2): the eigenvalues of a symmetric matrix.
  root = scipy.linalg.sqrtm(s1).real
  cross = np.sum(np.sqrt(np.linalg.eigvalsh(root @ s2 @ root)))
  mu1, mu2 = rng.normal(size=4), rng.normal(size=4)
  want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * cross
  np.testing.assert_allclose(metrics.frechet_distance(mu1, s1, mu2, s2), want, rtol=1e-8)


def test_too_few_samples_or_mismatched_features_are_input_errors():
  x = np.zeros((1, 3))
  with pytest.raises(InputError, match="FID needs at least 2 generated samples, got 1"):
    metrics.fid(np.ones((5, 3)), x)
  with pytest.raises(InputError, match="KID needs at least 2 real"):
    metrics.kid(x, np.ones((5, 3)))
  with pytest.raises(InputError, match=r"\(5, 3\) and \(5, 2\)"):
    metrics.fid(np.ones((5, 3)), np.ones((5, 2)))
  with pytest.raises(InputError, match="k=3 needs at least 4"):
    metrics.precision_recall(np.ones((3, 2)), np.ones((9, 2)))


def _precision_sklearn(real, fake, k):
  radii = NearestNeighbors(n_neighbors=k + 1).fit(real).kneighbors(real)[0][:, k]
  distances = np.linalg.norm(fake[:, None] - real[None], axis=-1)
  return float(np.mean(np.any(distances <= radii[None], axis=1)))


def test_precision_recall_against_sklearn_neighbours():
  rng = np.random.default_rng(5)
  real = rng.normal(size=(30, 2))
  fake = rng.normal(0.8, 0.6, size=(25, 2))  # mostly inside the real cloud, narrower
  p, r = metrics.precision_recall(real, fake, k=3)
  assert p == pytest.approx(_precision_sklearn(real, fake, 3))
  assert r == pytest.approx(_precision_sklearn(fake, real, 3))
  assert p > r  # a narrow generator: precise, missing much of the real spread
  np.testing.assert_allclose(
      metrics.knn_radii(real, 3), NearestNeighbors(n_neighbors=4).fit(real).kneighbors()[0][:, 2])


def test_precision_recall_hand_made_cases():
  # Four real points on a unit square: each one's nearest and 2nd-nearest other is at 1.
  real = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
  assert metrics.precision_recall(real, real, k=2) == (1.0, 1.0)
  assert metrics.precision_recall(real, real + 100.0, k=2) == (0.0, 0.0)
  # (0.5, 0.5) and (0.5, 1.5) are 0.71 from a corner (inside), (3, 3) is outside.
  # Generated radii (2nd-nearest of the other two): 3.54, 3.54, 2.92: the ball around
  # (0.5, 0.5) holds the whole square.
  fake = np.array([[0.5, 0.5], [3.0, 3.0], [0.5, 1.5]])
  p, r = metrics.precision_recall(real, fake, k=2)
  assert (p, r) == (pytest.approx(2 / 3), 1.0)
  # k=1, generated (0, 2.2) and (0, 2.7): radius 0.5 each; 1.2 from (0, 1), whose radius
  # is 1: nothing covers anything.
  assert metrics.precision_recall(real, np.array([[0.0, 2.2], [0.0, 2.7]]), k=1) == (0, 0)
  # k=1, generated (0, 1.2) and (0, 2.5): radius 1.3 each. (0, 1), (1, 1) and (0, 0) are
  # 0.2, 1.02 and 1.2 from (0, 1.2), (1, 0) is 1.56: recall 3/4. Precision: (0, 1.2) is
  # 0.2 from (0, 1), (0, 2.5) is 1.5 from it: 1/2.
  assert metrics.precision_recall(real, np.array([[0.0, 1.2], [0.0, 2.5]]), k=1) == (0.5, 0.75)


def test_kid_of_sets_smaller_than_a_subset_is_the_whole_sets_mmd_with_a_real_spread():
  rng = np.random.default_rng(5)
  real, fake = rng.normal(size=(12, 4)), rng.normal(0.5, 1.0, size=(12, 4))
  mean, std = metrics.kid(real, fake, subsets=10, subset_size=1000)
  assert mean == pytest.approx(metrics.mmd2_unbiased(fake, real))
  assert std > 0  # half-size subsets differ; whole-set "subsets" would all be equal
