"""Accounting: agreement with dp_accounting and with Abadi et al. (2016)'s published pair."""

import math

import dp_accounting
import numpy as np
import pytest
import scipy.stats
from scipy.special import gammaln, logsumexp

from medjax.privacy.dp import accounting


def _rdp_integer_order(q, sigma, alpha):
  """RDP of the Poisson-subsampled Gaussian at integer order alpha (Mironov et al. 2019)."""
  k = np.arange(alpha + 1)
  log_binom = gammaln(alpha + 1) - gammaln(k + 1) - gammaln(alpha - k + 1)
  terms = log_binom + (alpha - k) * np.log1p(-q) + k * np.log(q) + (k * k - k) / (2 * sigma ** 2)
  return logsumexp(terms) / (alpha - 1)


def test_abadi_2016_mnist_pair():
  """q = 0.01, sigma = 4, T = 10000, delta = 1e-5: 'epsilon ~ 1.26 using the moments
  accountant' (Abadi et al. 2016, Sec. 3.1), whose orders went up to 32 with the
  conversion eps = T * RDP(a) + log(1/delta) / (a - 1). Our accountant's conversion is
  tighter, so it must give less (and the same RDP curve, so not much less)."""
  q, sigma, steps, delta = 0.01, 4.0, 10_000, 1e-5
  moments = min(steps * _rdp_integer_order(q, sigma, a) + math.log(1 / delta) / (a - 1)
                for a in range(2, 33))
  assert moments == pytest.approx(1.26, abs=0.005)
  ours = accounting.epsilon(sigma, q, steps, delta / (1 - accounting.TRUNCATION_SHARE))
  assert 0.9 < ours < moments


def test_epsilon_is_dp_accounting_rdp_at_the_untruncated_share_of_delta():
  q, sigma, steps, delta = 128 / 2720, 1.1, 400, 1e-5
  acc = dp_accounting.rdp.RdpAccountant()
  acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)),
              steps)
  expected = acc.get_epsilon(delta * (1 - accounting.TRUNCATION_SHARE))
  assert accounting.epsilon(sigma, q, steps, delta) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("target", [1.0, 3.0])
def test_calibrated_sigma_is_the_smallest_that_meets_the_target(target):
  q, steps, delta = 0.05, 300, 1e-5
  sigma = accounting.calibrate_noise_multiplier(target, q, steps, delta)

  def eps(s):  # independently, with dp_accounting
    acc = dp_accounting.rdp.RdpAccountant()
    acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(s)),
                steps)
    return acc.get_epsilon(delta * (1 - accounting.TRUNCATION_SHARE))
  assert eps(sigma) <= target
  assert eps(sigma - 2e-3) > target


def test_unreachable_target_raises():
  with pytest.raises(accounting.CalibrationError, match="noise multiplier above"):
    accounting.calibrate_noise_multiplier(1e-4, 1.0, 1000, 1e-5)


def test_auto_capacity_is_the_smallest_multiple_within_the_truncation_share():
  n, q, steps, delta, eps = 1000, 0.05, 500, 1e-5, 3.0
  cap = accounting.auto_capacity(n, q, steps, delta, eps, multiple=4)
  share = accounting.TRUNCATION_SHARE * delta

  def slack(c):  # (1 + e^eps) * steps * P(Binomial(n + 1, q) > c)
    return (1 + math.exp(eps)) * steps * scipy.stats.binom.sf(c, n + 1, q)
  assert cap % 4 == 0 and slack(cap) <= share < slack(cap - 4)
