"""Privacy accounting for DP-SGD with (truncated) Poisson sampling, via `dp_accounting`.

Neighbouring data sets differ by adding or removing one example. Each step is a
Poisson-subsampled Gaussian mechanism (sampling probability q, noise multiplier
sigma); `steps` of them compose. Two accountants:

* `rdp` (default, fast): Renyi DP of the Poisson-subsampled Gaussian. Batches are
  truncated to `capacity` rows (see `sampling.py`); the truncated mechanism equals
  the untruncated one unless some step draws more than `capacity` examples, an
  event of probability tau <= steps * P(Binomial(N + 1, q) > capacity). So if the
  untruncated run is (eps, delta0)-DP, the truncated one is
  (eps, delta0 + (1 + e^eps) * tau)-DP. We spend delta0 = (1 - TRUNCATION_SHARE) *
  delta on RDP and require (1 + e^eps) * tau <= TRUNCATION_SHARE * delta.
* `pld`: privacy loss distributions of the truncated mechanism itself
  (`TruncatedSubsampledGaussianDpEvent`): tighter, exact for truncation, slower.
"""

from __future__ import annotations

import functools
import math

import dp_accounting
import numpy as np
import scipy.optimize
import scipy.stats

ACCOUNTANTS = ("rdp", "pld")
TRUNCATION_SHARE = 0.01  # of delta, reserved for batches cut to capacity (rdp)
MAX_NOISE_MULTIPLIER = 1000.0  # beyond this a target is treated as unreachable
# dp_accounting's default RDP orders without 1.1-1.6, whose series fail to converge
# (slowly, then excluded anyway) at the noise multipliers DP-SGD uses.
RDP_ORDERS = tuple([1 + x / 10 for x in range(7, 100)] + list(range(12, 64))
                   + [128, 256, 512, 1024])


class CalibrationError(ValueError):
  """No noise multiplier up to MAX_NOISE_MULTIPLIER reaches the target epsilon."""


def overflow_probability(dataset_size: int, q: float, capacity: int) -> float:
  """P(a Poisson batch of a neighbouring data set (N + 1 examples) exceeds capacity)."""
  return float(scipy.stats.binom.sf(capacity, dataset_size + 1, q))


def truncation_slack(dataset_size, q, capacity, steps, epsilon) -> float:
  """(1 + e^eps) * tau: the delta that truncating `steps` batches can cost (rdp)."""
  tau = steps * overflow_probability(dataset_size, q, capacity)
  return (1.0 + math.exp(min(epsilon, 700.0))) * tau


@functools.lru_cache(maxsize=4096)
def epsilon(noise_multiplier: float, q: float, steps: int, delta: float,
            accountant: str = "rdp", dataset_size: int = 0, capacity: int = 0) -> float:
  """Epsilon spent after `steps` steps at `delta` (truncation accounted as above)."""
  if steps <= 0:
    return 0.0
  if noise_multiplier <= 0:
    return math.inf
  if accountant == "rdp":
    acc = dp_accounting.rdp.RdpAccountant(RDP_ORDERS)
    acc.compose(dp_accounting.PoissonSampledDpEvent(
        q, dp_accounting.GaussianDpEvent(noise_multiplier)), int(steps))
    return float(acc.get_epsilon((1.0 - TRUNCATION_SHARE) * delta))
  if accountant == "pld":
    acc = dp_accounting.pld.PLDAccountant()
    acc.compose(dp_accounting.TruncatedSubsampledGaussianDpEvent(
        dataset_size=int(dataset_size), sampling_probability=q,
        truncated_batch_size=int(capacity), noise_multiplier=noise_multiplier), int(steps))
    return float(acc.get_epsilon(delta))
  raise ValueError(f"accountant {accountant!r}: one of {ACCOUNTANTS}")


def calibrate_noise_multiplier(target_epsilon: float, q: float, steps: int, delta: float,
                               accountant: str = "rdp", dataset_size: int = 0,
                               capacity: int = 0, tol: float = 1e-3) -> float:
  """The smallest noise multiplier (to `tol`) whose epsilon after `steps` is <= target."""
  eps = functools.partial(_epsilon_of, q=q, steps=steps, delta=delta, accountant=accountant,
                          dataset_size=dataset_size, capacity=capacity)
  hi = 1.0
  while eps(hi) > target_epsilon:
    if hi >= MAX_NOISE_MULTIPLIER:
      raise CalibrationError(
          f"epsilon={target_epsilon} needs a noise multiplier above "
          f"{MAX_NOISE_MULTIPLIER:g} (q={q:.4g}, {steps} steps, delta={delta:g})")
    hi *= 2.0
  lo = hi / 2.0
  while lo > 1e-2 and eps(lo) <= target_epsilon:
    hi, lo = lo, lo / 2.0
  sigma = scipy.optimize.brentq(lambda s: eps(s) - target_epsilon, lo, hi, xtol=tol / 4)
  while eps(sigma) > target_epsilon:  # brentq's root may sit just on the wrong side
    sigma += tol / 4
  return float(sigma)


def _epsilon_of(sigma, *, q, steps, delta, accountant, dataset_size, capacity):
  return epsilon(float(sigma), q, steps, delta, accountant, dataset_size, capacity)


def auto_capacity(dataset_size: int, q: float, steps: int, delta: float, epsilon_bound: float,
                  multiple: int = 1) -> int:
  """Smallest multiple of `multiple` rows whose truncation slack (see the module
  docstring) stays within TRUNCATION_SHARE * delta at `epsilon_bound`."""
  candidates = np.arange(multiple, dataset_size + 1 + multiple, multiple)
  tau = steps * scipy.stats.binom.sf(candidates, dataset_size + 1, q)
  slack = (1.0 + math.exp(min(epsilon_bound, 700.0))) * tau
  return int(candidates[np.argmax(slack <= TRUNCATION_SHARE * delta)])
