"""The steps/s helpers run end to end on tiny batches (numbers are for experiments)."""

import importlib.util

import pytest

from medjax.treatment.envs import speed

needs = lambda pkg: pytest.mark.skipif(importlib.util.find_spec(pkg) is None,
                                       reason=f"{pkg} is not installed")


@needs("simglucose")
def test_t1d_speed_runs():
  assert speed.jax_t1d(2, steps=3) > 0
  assert speed.simglucose_t1d(seconds=0.2) > 0


@needs("icu_sepsis")
def test_sepsis_speed_runs():
  assert speed.jax_sepsis(2, steps=3) > 0
  assert speed.icu_sepsis_reference(seconds=0.2) > 0
