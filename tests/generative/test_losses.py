import jax.numpy as jnp
import numpy as np
import pytest

from medjax.generative import losses


def _logits(values):
  return jnp.asarray(values, jnp.float32).reshape(len(values), 1, 1, 1)


def test_hinge_losses_match_hand_computation_and_ignore_padding():
  real, fake = _logits([2.0, 0.5, -1.0]), _logits([-3.0, 0.0, 4.0])
  weight = jnp.asarray([1.0, 1.0, 0.0])  # the third row is padding
  # D: relu(1 - real) + relu(1 + fake) per row: (0 + 0), (0.5 + 1) -> mean 0.75.
  assert float(losses.discriminator_loss([real], [fake], weight)) == pytest.approx(0.75)
  # G: -fake: 3, 0 -> 1.5.
  assert float(losses.generator_loss([fake], weight)) == pytest.approx(1.5)


def test_non_saturating_losses_are_the_logistic_ones():
  real, fake = _logits([1.0]), _logits([-2.0])
  w = jnp.ones(1)
  softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
  d = losses.discriminator_loss([real, real], [fake, fake], w, "non_saturating")
  assert float(d) == pytest.approx(softplus(-1.0) + softplus(-2.0), rel=1e-5)
  g = losses.generator_loss([fake], w, "non_saturating")
  assert float(g) == pytest.approx(softplus(2.0), rel=1e-5)


def test_feature_matching_is_mean_l1_over_layers_and_scales():
  a = [[jnp.zeros((2, 4, 4, 3)), jnp.ones((2, 2, 2, 5))]]
  b = [[jnp.full((2, 4, 4, 3), 2.0), jnp.ones((2, 2, 2, 5))]]
  assert float(losses.feature_matching(a, b, jnp.ones(2))) == pytest.approx(1.0)


def test_batch_spread_is_zero_for_identical_rows_and_the_std_otherwise():
  same = jnp.ones((4, 3, 3, 1)) * 0.3
  assert float(losses.batch_spread(same, jnp.ones(4))) == pytest.approx(0.0, abs=1e-5)
  rows = np.random.default_rng(0).uniform(size=(5, 2, 2, 1)).astype(np.float32)
  expected = np.mean(np.std(rows, axis=0))
  assert float(losses.batch_spread(jnp.asarray(rows), jnp.ones(5))) == pytest.approx(
      expected, rel=1e-4)
