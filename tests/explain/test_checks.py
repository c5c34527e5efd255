"""Randomisation sanity test and deletion/insertion faithfulness, against hand values."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from medjax import explain
from medjax.explain import checks


class Mlp(nn.Module):

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.tanh(nn.Dense(16, name="hidden")(x))
    return nn.Dense(3, name="out")(x)


def test_spearman_matches_scipy_with_ties():
  rng = np.random.default_rng(0)
  a = rng.integers(0, 4, size=(3, 20)).astype(float)  # many ties
  b = a + rng.normal(size=a.shape)
  want = [stats.spearmanr(a[i], b[i]).statistic for i in range(3)]
  np.testing.assert_allclose(checks.spearman(a, b), want, rtol=1e-10)
  assert np.isnan(checks.spearman(np.ones((1, 5)), b[:1, :5])[0])  # constant map


def test_cascading_and_independent_layer_orders():
  trained = {"a": 1, "b": 2, "c": 3}
  rand = {"a": -1, "b": -2, "c": -3}
  assert checks.cascading_params(trained, rand) == [
      ("c", {"a": 1, "b": 2, "c": -3}), ("b", {"a": 1, "b": -2, "c": -3}),
      ("a", {"a": -1, "b": -2, "c": -3})]
  assert checks.independent_params(trained, rand)[1] == ("b", {"a": 1, "b": -2, "c": 3})


def random_init(model, x, seed):
  """Normal(0, 1/fan_in) weights drawn by numpy (cheaper than compiling model.init)."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)
  return jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape) / np.sqrt(s.shape[0]),
                                            s.dtype), shapes)


def test_randomisation_same_model_one_reinitialised_low():
  model = Mlp()
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 48)), jnp.float32)
  variables, random_variables = random_init(model, x, 1), random_init(model, x, 2)

  @jax.jit  # one compilation for every parameter set
  def attribute(v, x):
    return explain.gradients(explain.target_score(lambda z: model.apply(v, z), 0), x)

  same = checks.randomisation_test(attribute, variables, variables, x)
  assert same["full"]["abs"] == pytest.approx(1.0) and same["full"]["signed"] == 1.0
  other = checks.randomisation_test(attribute, variables, random_variables, x,
                                    mode="cascading")
  assert list(other) == ["out", "hidden"]
  # Fully re-initialised: gradients of independent random nets, rank correlation ~ 0
  # (sd about 1/sqrt(48) per example).
  assert abs(other["hidden"]["signed"]) < 0.35 and abs(other["hidden"]["abs"]) < 0.35
  with pytest.raises(ValueError, match="cascading"):
    checks.randomisation_test(attribute, variables, variables, x, mode="layers")


def planted():
  """16 features; the score counts the 4 planted ones (value 1) still present."""
  mask = np.zeros((4, 4), np.float32)
  mask[1:3, 1:3] = 1
  x = np.random.default_rng(1).uniform(0.5, 1.5, size=(2, 4, 4)).astype(np.float32)
  x[:, 1:3, 1:3] = 1.0
  return jnp.asarray(x), jnp.asarray(mask), lambda z: jnp.sum(z * mask, axis=(1, 2))


def test_faithfulness_perfect_beats_random():
  # Perfect order: the curve drops by one per deleted feature, deletion AUC r^2 / (2n) =
  # 0.5 and insertion r - 0.5 = 3.5 (r = 4, n = 16); a random order removes r/n of the
  # signal per feature in expectation: AUC r/2 = 2.
  x, mask, fn = planted()
  result = checks.faithfulness(fn, x, x * mask, jax.random.key(0), steps=16, seeds=8)
  curves = result["per_example"]
  np.testing.assert_allclose(curves["deletion"]["curve"][0], [4, 3, 2, 1] + [0] * 13)
  np.testing.assert_allclose(curves["insertion"]["curve"][1], [0, 1, 2, 3] + [4] * 13)
  assert result["deletion_auc"] == pytest.approx(0.5)
  assert result["insertion_auc"] == pytest.approx(3.5)
  assert result["random_deletion_auc"] == pytest.approx(2.0, abs=0.5)
  assert result["random_insertion_auc"] == pytest.approx(2.0, abs=0.5)
  worst = checks.faithfulness(fn, x, -x * mask, jax.random.key(0), steps=16, seeds=8)
  assert worst["deletion_auc"] == pytest.approx(4 - 0.5)  # signal deleted last


def test_auc_uneven_steps():
  # 10 features in 4 steps: 0, 2 (2.5 rounds to even), 5, 8 (7.5), 10 changed.
  np.testing.assert_array_equal(checks.step_counts(10, 4), [0, 2, 5, 8, 10])
  np.testing.assert_allclose(checks.auc(np.array([[1.0, 1, 1, 1, 1]]), 10, 4), [1.0])
