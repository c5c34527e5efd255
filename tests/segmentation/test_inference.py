import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.segmentation import inference


def _normal(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _pointwise(x):  # C channels -> 2C channels, pixel by pixel
  return jnp.concatenate([jnp.tanh(x) * 2, x**2 - 1], axis=-1)


def _window_mean(x):  # not pointwise: depends on the whole window
  axes = tuple(range(1, x.ndim - 1))
  return x + jnp.mean(x, axis=axes, keepdims=True) ** 2


def _with_position(x):  # depends on where a pixel sits in the window
  rows = jnp.arange(x.shape[1]).reshape(1, -1, *([1] * (x.ndim - 2)))
  return _window_mean(x) + 0.1 * rows


def _reference(image, roi, predictor, overlap, mode):
  """Plain numpy loop over MONAI's window grid, one window at a time."""
  image = np.asarray(image, np.float64)
  spatial = image.shape[1:-1]
  pads = [((r - s) // 2, r - s - (r - s) // 2) if s < r else (0, 0)
          for s, r in zip(spatial, roi)]
  padded = np.pad(image, [(0, 0), *pads, (0, 0)])
  grids = []
  for size, r in zip(padded.shape[1:-1], roi):
    step = max(int(r * (1 - overlap)), 1)
    n = 1 if size <= r else math.ceil((size - r) / step) + 1
    grids.append(sorted({min(i * step, size - r) for i in range(n)}))
  g = np.ones(roi)
  if mode == "gaussian":
    for axis, r in enumerate(roi):
      shape = [1] * len(roi)
      shape[axis] = r
      g = g * np.exp(-((np.arange(r) - (r - 1) / 2) ** 2) / (2 * (r / 8) ** 2)).reshape(
          shape)
  total, norm = 0.0, np.zeros(padded.shape[:-1] + (1,))
  for b in range(image.shape[0]):
    for corner in itertools.product(*grids):
      sl = (b, *(slice(c, c + r) for c, r in zip(corner, roi)))
      out = np.asarray(predictor(jnp.asarray(padded[sl][None], jnp.float32)))[0]
      if np.isscalar(total):
        total = np.zeros(padded.shape[:-1] + (out.shape[-1],))
      total[sl] += g[..., None] * out
      norm[sl] += g[..., None]
  crop = tuple(slice(lo, lo + s) for (lo, _), s in zip(pads, spatial))
  return (total / norm)[(slice(None), *crop)]


def test_window_starts_hand_case_and_coverage():
  assert inference.window_starts(10, 4, 0.25) == [0, 3, 6]
  assert inference.window_starts(10, 4, 0.5) == [0, 2, 4, 6]
  assert inference.window_starts(4, 4, 0.5) == [0]
  for size, roi, overlap in itertools.product([5, 8, 13, 31], [1, 2, 4, 5],
                                              [0.0, 0.25, 0.5, 0.9]):
    starts = inference.window_starts(size, roi, overlap)
    covered = np.zeros(size, bool)
    for s in starts:
      covered[s:s + roi] = True
    assert covered.all() and starts[0] == 0 and starts[-1] == size - roi
    step = max(int(roi * (1 - overlap)), 1)
    assert all(0 < b - a <= step for a, b in zip(starts, starts[1:]))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["gaussian", "constant"])
@pytest.mark.parametrize("overlap", [0.25, 0.5])
def test_pointwise_predictor_gives_pointwise_output(mode, overlap):
  image = _normal(0, (2, 19, 23, 2))
  out = inference.sliding_window_inference(image, (8, 8), _pointwise, overlap, mode,
                                           sw_batch_size=3)
  assert out.shape == (2, 19, 23, 4) and out.dtype == jnp.float32
  np.testing.assert_allclose(out, _pointwise(image), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
def test_window_dependent_predictor_matches_loop_reference(mode):
  image = _normal(1, (2, 13, 11, 1))
  out = inference.sliding_window_inference(image, (6, 8), _with_position, 0.5, mode,
                                           sw_batch_size=4)
  np.testing.assert_allclose(out, _reference(image, (6, 8), _with_position, 0.5, mode),
                             rtol=1e-5, atol=1e-6)


def test_image_smaller_than_roi():
  image = _normal(2, (1, 5, 12, 1))
  seen = []

  def predictor(x):
    seen.append(x.shape)
    return _with_position(x)

  out = inference.sliding_window_inference(image, (8, 8), predictor, sw_batch_size=2)
  assert out.shape == image.shape and seen[-1] == (2, 8, 8, 1)
  np.testing.assert_allclose(out, _reference(image, (8, 8), _with_position, 0.25,
                                             "gaussian"), rtol=1e-5, atol=1e-6)
  small = inference.sliding_window_inference(image, (8, 8), _pointwise, mode="constant")
  np.testing.assert_allclose(small, _pointwise(image), rtol=1e-5, atol=1e-6)


def test_3d_and_jit():
  image = _normal(3, (1, 9, 6, 7, 1))
  run = jax.jit(functools.partial(inference.sliding_window_inference, roi_size=(4, 4, 4),
                                  predictor=_window_mean, overlap=0.5, sw_batch_size=5))
  np.testing.assert_allclose(run(image), _reference(image, (4, 4, 4), _window_mean, 0.5,
                                                    "gaussian"), rtol=1e-5, atol=1e-6)
  pointwise = inference.sliding_window_inference(image, (4, 4, 4), _pointwise)
  np.testing.assert_allclose(pointwise, _pointwise(image), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spatial,roi", [((13, 11), (6, 8)), ((5, 12), (8, 8)),
                                         ((6, 5, 7), (4, 4, 4))])
def test_host_version_matches_reference(spatial, roi):
  image = np.asarray(_normal(4, (2, *spatial, 1)))
  calls = []

  def host_predictor(windows):
    assert isinstance(windows, np.ndarray)
    calls.append(windows.shape)
    return np.asarray(_with_position(jnp.asarray(windows)))

  out = inference.sliding_window_host(image, roi, host_predictor, 0.5, sw_batch_size=3)
  assert isinstance(out, np.ndarray) and out.shape == image.shape
  assert set(calls) == {(3, *roi, 1)}  # fixed shape: the last chunk is padded
  np.testing.assert_allclose(out, _reference(image, roi, _with_position, 0.5, "gaussian"),
                             rtol=1e-5, atol=1e-6)


def test_importance_map_and_errors():
  g = inference.importance_map((9, 5))
  assert g.max() == 1.0 and g[4, 2] == 1.0 and g[0, 0] < g[4, 0] < g[4, 2]
  np.testing.assert_allclose(g, g[::-1, ::-1])
  np.testing.assert_array_equal(inference.importance_map((3, 4), "constant"), 1.0)
  with pytest.raises(ValueError):
    inference.importance_map((3, 4), "median")
  with pytest.raises(ValueError):
    inference.sliding_window_inference(jnp.ones((1, 8, 8, 1)), (4,), _pointwise)
  with pytest.raises(ValueError):
    inference.sliding_window_inference(jnp.ones((1, 8, 8, 1)), (4, 4),
                                       lambda x: x[:, :2, :2])


@pytest.mark.parametrize("mode", ["gaussian", "constant"])
@pytest.mark.parametrize("shape,roi", [((2, 37, 29, 3), (16, 12)), ((1, 10, 9, 1), (16, 16)),
                                       ((1, 9, 11, 13, 2), (4, 8, 8))])
def test_host_version_matches_jit_version(mode, shape, roi):
  rng = np.random.default_rng(0)
  image = rng.normal(size=shape).astype(np.float32)
  kernel = rng.normal(size=(shape[-1], 3)).astype(np.float32)

  def model(x):  # position-dependent, so that blending weights matter
    ramp = jnp.arange(x.shape[1], dtype=jnp.float32).reshape(
        (1, -1) + (1,) * (x.ndim - 2))
    return jnp.tanh(x @ kernel) * (1 + ramp)

  host = inference.sliding_window_host(image, roi, lambda w: np.asarray(model(w)),
                                       overlap=0.5, mode=mode, sw_batch_size=5)
  traced = inference.sliding_window_inference(image, roi, model, overlap=0.5, mode=mode,
                                              sw_batch_size=5)
  assert host.shape == shape[:-1] + (3,)
  np.testing.assert_allclose(host, np.asarray(traced), rtol=1e-5, atol=1e-5)


def _asymmetric(x):  # window- and position-dependent per channel; numpy or jax
  xp = np if isinstance(x, np.ndarray) else jnp
  rows = xp.arange(x.shape[1], dtype=x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))
  window_mean = xp.mean(x, axis=tuple(range(1, x.ndim - 1)), keepdims=True)
  return (x + window_mean**2 + 0.1 * rows) * xp.arange(1, x.shape[-1] + 1, dtype=x.dtype)


def _pointwise_np(x):
  return np.concatenate([np.tanh(x) * 2, x**2 - 1], axis=-1)


def _softmax_np(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _flip_average(predictor, axes, average="probabilities"):
  """Reference test-time mirroring: explicit loop over every on/off flip pattern."""

  def predict(x):
    x, outs = np.asarray(x, np.float64), []
    for pattern in itertools.product([False, True], repeat=len(axes)):
      flipped = x
      for axis, on in zip(axes, pattern):
        flipped = flipped[(slice(None),) * (axis + 1) + (slice(None, None, -1),)] if on \
            else flipped
      out = np.asarray(predictor(flipped), np.float64)
      for axis, on in zip(axes, pattern):
        out = out[(slice(None),) * (axis + 1) + (slice(None, None, -1),)] if on else out
      outs.append(_softmax_np(out) if average == "probabilities" else out)
    return np.mean(outs, axis=0)

  return predict


def test_mirroring_flip_equivariant_predictor_is_plain_softmax():
  x = np.random.default_rng(5).normal(size=(2, 4, 3, 5, 2)).astype(np.float32)
  out = inference.mirrored(_pointwise_np, (0, 1, 2))(x)
  assert isinstance(out, np.ndarray) and out.dtype == np.float32
  np.testing.assert_allclose(out, _softmax_np(_pointwise_np(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("average", ["probabilities", "logits"])
def test_mirroring_matches_flip_loop_and_is_flip_equivariant(average):
  x = np.random.default_rng(6).normal(size=(2, 5, 4, 3, 2)).astype(np.float32)
  mirror = inference.mirrored(_asymmetric, (0, 2), average)
  out = mirror(x)
  np.testing.assert_allclose(out, _flip_average(_asymmetric, (0, 2), average)(x),
                             rtol=1e-5, atol=1e-6)
  plain = _softmax_np(_asymmetric(x)) if average == "probabilities" else _asymmetric(x)
  assert np.abs(out - plain).max() > 1e-2  # the position ramp is not flip-invariant
  flipped = mirror(np.ascontiguousarray(x[:, ::-1]))  # a group average: equivariant
  np.testing.assert_allclose(flipped, out[:, ::-1], rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError):
    mirror_bad = inference.mirrored(_asymmetric, (0, 3))
    mirror_bad(x)
  with pytest.raises(ValueError):
    inference.mirrored(_asymmetric, (0,), average="median")


def test_predict_volume_identity_logits_reproduce_softmax_and_fill_mesh():
  volume = np.random.default_rng(7).normal(size=(9, 10, 5, 3)).astype(np.float32)
  calls = []

  def predictor(windows):
    calls.append(windows.shape)
    return windows  # identity logits: translation- and flip-equivariant

  for mirror_axes in [(), (0, 1, 2)]:
    probs = inference.predict_volume(volume, (4, 4, 8), predictor, sw_batch_size=6,
                                     batch_divisor=4, mirror_axes=mirror_axes)
    assert probs.shape == volume.shape  # z (5) < roi (8): padded, then cropped back
    np.testing.assert_allclose(probs, _softmax_np(volume), rtol=1e-5, atol=1e-6)
  assert set(calls) == {(8, 4, 4, 8, 3)}  # 6 rounded up to a multiple of 4 devices
  with pytest.raises(ValueError):
    inference.predict_volume(volume[..., 0], (4, 4, 8), predictor)


def test_predict_volume_with_mirroring_matches_loop_reference():
  volume = np.random.default_rng(8).normal(size=(7, 6, 9, 2)).astype(np.float32)
  probs = inference.predict_volume(volume, (4, 4, 4), _asymmetric, overlap=0.5,
                                   sw_batch_size=3, mirror_axes=(0, 1, 2))
  expected = _reference(volume[None], (4, 4, 4), _flip_average(_asymmetric, (0, 1, 2)),
                        0.5, "gaussian")[0]
  np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_jit_sliding_window_with_mirroring():
  image = _normal(9, (1, 6, 5, 5, 2))
  run = jax.jit(functools.partial(
      inference.sliding_window_inference, roi_size=(4, 4, 4), overlap=0.5, sw_batch_size=2,
      predictor=inference.mirrored(_asymmetric, (0, 2), "logits")))
  expected = _reference(image, (4, 4, 4), _flip_average(_asymmetric, (0, 2), "logits"),
                        0.5, "gaussian")
  np.testing.assert_allclose(run(image), expected, rtol=1e-5, atol=1e-5)
