"""explain.report: the checks dict on models whose attributions are known by hand."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from medjax import explain
from medjax.explain import report


class _Linear(nn.Module):

  @nn.compact
  def __call__(self, x):
    return nn.Dense(2, use_bias=False)(x.reshape(x.shape[0], -1))


def _setup():
  model = _Linear()
  x = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.0, (3, 4, 4, 1)), jnp.float32)
  variables = model.init(jax.random.key(0), x)
  randomised = model.init(jax.random.key(1), x)
  return model, variables, randomised, x


def test_linear_model_checks_match_hand_values(tmp_path):
  model, variables, randomised, x = _setup()
  attr, result = report.explain_and_check(
      model.apply, variables, randomised, x, explain.class_output(1),
      key=jax.random.key(2), method="integrated_gradients", ig_steps=8)
  w = np.asarray(variables["params"]["Dense_0"]["kernel"])[:, 1].reshape(4, 4, 1)
  np.testing.assert_allclose(attr, np.asarray(x) * w, rtol=1e-5, atol=1e-6)  # IG = w x
  assert result["integrated_gradients_completeness"]["abs_gap_max"] < 1e-4
  # Attributions are w*x vs w'*x: their ranks correlate as those of w and w' do.
  w_rand = np.asarray(randomised["params"]["Dense_0"]["kernel"])[:, 1].reshape(4, 4, 1)
  x_np = np.asarray(x)
  want = np.mean([explain.spearman(np.abs(x_np[i] * w).reshape(1, -1),
                                   np.abs(x_np[i] * w_rand).reshape(1, -1))[0]
                  for i in range(3)])
  np.testing.assert_allclose(result["randomisation"]["full"]["abs"], want, atol=1e-6)
  # Every input entry differs from the 0 baseline here: the informative rho is the same.
  np.testing.assert_allclose(result["randomisation"]["informative"]["abs"], want, atol=1e-6)
  # Deleting features in IG order first removes the largest positive terms of a sum.
  faith = result["faithfulness"]
  assert faith["deletion_auc"] < faith["random_deletion_auc"]
  assert faith["insertion_auc"] > faith["random_insertion_auc"] and result["faithful"]
  path = tmp_path / "explain" / "checks.json"
  report.write_json(result, str(path))
  loaded = json.loads(path.read_text())
  assert loaded["method"] == "integrated_gradients" and "_faithfulness_curves" not in loaded
  assert "per_example" not in loaded["faithfulness"]  # summaries only
  assert "abs_per_example" not in loaded["randomisation"]["full"]


def test_grouped_sums_trailing_axes():
  a = jnp.arange(12.0).reshape(1, 2, 2, 3)
  g = report.grouped(a, 1)
  np.testing.assert_allclose(g[0, 1, 0], [np.sum(np.arange(6, 9))] * 3)
  assert report.grouped(a, 0) is a


def test_informative_rho_ignores_entries_at_the_baseline():
  rng = np.random.default_rng(3)
  x = np.zeros((2, 6, 6, 1), np.float32)
  x[:, :3] = rng.uniform(1, 2, (2, 3, 6, 1))  # the lower half stays at the baseline
  ref, other = rng.normal(size=x.shape) * (x != 0), rng.normal(size=x.shape) * (x != 0)
  got = report.informative_rho(ref, other, x)
  want = np.mean([explain.spearman(np.abs(ref[i, :3]).reshape(1, -1),
                                   np.abs(other[i, :3]).reshape(1, -1))[0] for i in range(2)])
  np.testing.assert_allclose(got["abs"], want, atol=1e-9)
  assert got["fraction"] == 0.5
  assert explain.spearman(np.abs(ref).reshape(2, -1), np.abs(other).reshape(2, -1)).mean() > want
