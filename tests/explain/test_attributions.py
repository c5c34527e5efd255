"""Attribution methods against hand-derived values on linear, quadratic and cubic models."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax import explain
from medjax.engine.errors import InputError
from medjax.explain import attributions

RNG = np.random.default_rng(0)
W = jnp.asarray(RNG.normal(size=(5, 4)), jnp.float32)
X = jnp.asarray(RNG.normal(size=(3, 5, 4)), jnp.float32)


def linear(x):
  return jnp.sum(x * W, axis=(1, 2))


def cubic(x):
  return jnp.sum(x ** 3, axis=(1, 2))


def test_linear_model_gradients_and_grad_x_input():
  np.testing.assert_allclose(explain.gradients(linear, X), np.broadcast_to(W, X.shape),
                             rtol=1e-6)
  np.testing.assert_allclose(explain.grad_x_input(linear, X), W * X, rtol=1e-6)


def test_linear_model_integrated_gradients_exact():
  attr, gap = explain.integrated_gradients(linear, X, steps=3)
  np.testing.assert_allclose(attr, W * X, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(gap, 0.0, atol=1e-5)
  # Packed rows (graph nodes) of 2 examples: completeness per example via `segments`.
  seg = jnp.array([0, 0, 1, 1, 1])
  nodes = X[0]
  packed = lambda z: jax.ops.segment_sum(jnp.sum(z * W[0], 1), seg, num_segments=2)
  attr, gap = explain.integrated_gradients(packed, nodes, steps=3, segments=seg)
  np.testing.assert_allclose(attr, W[0] * nodes, rtol=1e-5, atol=1e-6)
  assert gap.shape == (2,)
  np.testing.assert_allclose(gap, 0.0, atol=1e-5)
  for method in attributions.IG_METHODS:  # every rule's weights sum to the path length 1
    alphas, weights = attributions.ig_nodes(5, method)
    assert alphas.min() >= 0 and alphas.max() <= 1
    np.testing.assert_allclose(weights.sum(), 1.0)


def test_cubic_completeness_gap_matches_quadrature_error():
  # f = sum x^3, zero baseline: attr = 3 x^3 * sum_k w_k alpha_k^2. Trapezoid:
  # sum w alpha^2 = 1/3 + 1/(6 m^2) -> gap = sum x^3 / (2 m^2); midpoint: -sum x^3/(4 m^2).
  x = X[:1]
  s3 = float(np.sum(np.asarray(x, np.float64) ** 3))
  _, gap_t = explain.integrated_gradients(cubic, x, steps=4, method="trapezoid")
  np.testing.assert_allclose(gap_t[0], s3 / (2 * 16), rtol=1e-3, atol=1e-5)
  _, gap_m = explain.integrated_gradients(cubic, x, steps=4, method="riemann_middle")
  np.testing.assert_allclose(gap_m[0], -s3 / (4 * 16), rtol=1e-3, atol=1e-5)


def test_quadratic_left_riemann_gap_shrinks_as_one_over_steps():
  # f = sum x^2 from baseline b: the integrand is linear in alpha, so the left sum misses
  # exactly ||x - b||^2 / m.
  quad = lambda x: jnp.sum(x ** 2, axis=(1, 2))
  b = 0.5
  d2 = float(np.sum((np.asarray(X[:1]) - b) ** 2))
  for m in (2, 32):
    _, gap = explain.integrated_gradients(quad, X[:1], baseline=b, steps=m,
                                          method="riemann_left", batch_size=4)
    np.testing.assert_allclose(gap[0], -d2 / m, rtol=1e-4)


def test_smoothgrad_sine_matches_gaussian_expectation():
  # E[cos(x + e)] = cos(x) exp(-s^2/2) for e ~ N(0, s^2); s = noise * (max - min).
  x = jnp.linspace(-2.0, 2.0, 6).reshape(1, 6)
  noise = 0.25
  sigma = noise * 4.0
  key = jax.random.key(0, impl="rbg")  # any key; rbg compiles faster than threefry on CPU
  got = explain.smoothgrad(lambda z: jnp.sum(jnp.sin(z), 1), x, key,
                           samples=2000, noise=noise)
  want = np.cos(np.asarray(x)) * np.exp(-sigma ** 2 / 2)
  np.testing.assert_allclose(got, want, atol=0.06)  # ~4 Monte-Carlo sd


def test_occlusion_finds_the_summed_region_in_2d_and_3d():
  for spatial, region in (((6, 7), (slice(2, 4), slice(1, 4))),
                          ((4, 5, 3), (slice(1, 3), slice(0, 2), slice(2, 3)))):
    mask = np.zeros(spatial, np.float32)
    mask[region] = 1
    x = jnp.asarray(RNG.uniform(1, 2, size=(2,) + spatial + (2,)), jnp.float32)
    fn = lambda z, m=mask: jnp.sum(z * m[..., None], axis=tuple(range(1, z.ndim)))
    attr = explain.occlusion(fn, x, patch=(1,) * len(spatial), batch_size=5)
    want = np.sum(np.asarray(x) * mask[..., None], -1, keepdims=True) * np.ones((1,) * x.ndim)
    np.testing.assert_allclose(attr, np.broadcast_to(want, x.shape), rtol=1e-5)


def test_occlusion_averages_overlapping_windows():
  # f = x[0, 0]; 2x2 windows, stride 1 on 4x4: only the window at (0, 0) drops the score
  # (by x00), and it covers [0:2, 0:2], which 1, 2, 2 and 4 windows cover in all.
  x = jnp.asarray(RNG.uniform(1, 2, size=(1, 4, 4)), jnp.float32)
  attr = explain.occlusion(lambda z: z[:, 0, 0], x, patch=(2, 2), stride=(1, 1))
  x00 = float(x[0, 0, 0])
  want = np.zeros((4, 4))
  want[:2, :2] = [[x00, x00 / 2], [x00 / 2, x00 / 4]]
  np.testing.assert_allclose(attr[0], want, rtol=1e-5)


def test_window_origins_cover_the_edge():
  np.testing.assert_array_equal(attributions.window_origins((5,), (2,), (2,))[:, 0], [0, 2, 3])
  with pytest.raises(ValueError, match="does not fit"):
    attributions.window_origins((3,), (4,), (1,))


def test_scores_for_classification_and_segmentation():
  logits = RNG.normal(size=(3, 4)).astype(np.float32)
  seg = RNG.normal(size=(2, 3, 3, 2)).astype(np.float32)
  mask = np.zeros((3, 3), bool)
  mask[1:, :2] = True

  @jax.jit  # one compilation instead of one per eager op
  def scores(logits, seg):
    return (explain.class_output(2)({"logits": logits}),
            explain.class_output(0, True)(logits[:, :1]),
            explain.class_output(jnp.array([0, 3, 1]), True)(logits),
            explain.region_score(lambda x: x, 1, mask)(seg))

  logit2, sigmoid0, softmax, region = scores(logits, seg)
  np.testing.assert_allclose(logit2, logits[:, 2])
  np.testing.assert_allclose(sigmoid0, 1 / (1 + np.exp(-logits[:, 0])), rtol=1e-6)
  p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  np.testing.assert_allclose(softmax, p[[0, 1, 2], [0, 3, 1]], rtol=1e-6)
  np.testing.assert_allclose(region, seg[:, 1:, :2, 1].sum((1, 2)), rtol=1e-6)


def test_attribute_by_name_and_unknown_method_names_the_flag():
  attr, extras = explain.attribute("integrated_gradients", linear, X, steps=3)
  np.testing.assert_allclose(attr, W * X, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(extras["gap"], 0.0, atol=1e-5)
  with pytest.raises(InputError, match=r"--config.explain.method=integrated_gradient: .*"
                                       r"did you mean 'integrated_gradients'"):
    explain.attribute("integrated_gradient", linear, X)
