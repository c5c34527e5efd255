"""Sliding-window inference (MONAI `sliding_window_inference`, written for jit).

A patch model is applied to overlapping windows of a larger image or volume and
the window outputs are blended with importance weights:

  out(x) = sum_w g_w(x) * f(window_w)(x) / sum_w g_w(x),

with `g` a Gaussian centred on the window (sigma = `sigma_scale` * roi per
axis, MONAI's default 1/8) or constant. Window starts along an axis are
`i * int(roi * (1 - overlap))`, the last one clamped to end at the border, so
every pixel is covered. Images smaller than the window are zero-padded
symmetrically and the output is cropped back.

The window list depends only on shapes, so the whole function is jit-able
(`roi_size`, `predictor`, `overlap`, `mode`, `sw_batch_size` static). Windows
are processed `sw_batch_size` at a time by one `lax.scan`, so the predictor is
traced once with a fixed input shape; the last chunk is padded with repeated
windows of weight 0. The predictor must be traceable (e.g. a model apply).
`sliding_window_host` is the same computation in numpy around a host predictor
(numpy in, numpy out), such as the trainer's `predict_fn`.

Test-time mirroring (`mirrored`) wraps a predictor: every window is also
predicted flipped along each subset of `mirror_axes` (2**k passes, flipped
back) and the softmax probabilities are averaged (nnU-Net v1; nnU-Net v2
averages logits, `average="logits"`). `predict_volume` is the whole-volume
entry point for evaluators: host windows, per-window softmax, optional
mirroring, Gaussian blending; the output always has the volume's shape (a
volume of any size is covered by windows, never cropped).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
  """Start offsets of windows of length `roi` covering `size` (>= roi) pixels."""
  if roi >= size:
    return [0]
  step = max(int(roi * (1 - overlap)), 1)
  count = -(-(size - roi) // step) + 1
  return sorted({min(i * step, size - roi) for i in range(count)})


def importance_map(roi_size: Sequence[int], mode: str = "gaussian",
                   sigma_scale: float = 0.125) -> np.ndarray:
  """Blending weights over one window, max 1 (float32, shape `roi_size`)."""
  if mode == "constant":
    return np.ones(roi_size, np.float32)
  if mode != "gaussian":
    raise ValueError(f"mode must be 'gaussian' or 'constant', got {mode!r}")
  weights = np.ones((), np.float64)
  for roi in roi_size:
    centre, sigma = (roi - 1) / 2, max(sigma_scale * roi, 1e-6)
    axis = np.exp(-0.5 * ((np.arange(roi) - centre) / sigma) ** 2)
    weights = np.multiply.outer(weights, axis)
  weights = weights / weights.max()
  return np.maximum(weights, 1e-6).astype(np.float32)  # never 0: pixels stay covered


def _window_table(batch: int, spatial: Sequence[int], roi_size: Sequence[int],
                  overlap: float, chunk: int):
  """(N, 1 + d) window corners (example index first) and (N,) validity, N % chunk == 0."""
  starts = [window_starts(s, r, overlap) for s, r in zip(spatial, roi_size)]
  corners = [(b, *c) for b in range(batch) for c in itertools.product(*starts)]
  pad = -len(corners) % chunk
  valid = np.r_[np.ones(len(corners)), np.zeros(pad)].astype(np.float32)
  corners = np.array(corners + [corners[-1]] * pad, np.int32)
  return corners, valid


def _prepare(shape, roi_size, overlap, sw_batch_size):
  """Validated roi, symmetric pads for axes smaller than the roi, window table."""
  roi_size = tuple(int(r) for r in roi_size)
  spatial = shape[1:-1]
  if len(roi_size) != len(spatial) or not 0 <= overlap < 1:
    raise ValueError(f"roi_size {roi_size} / overlap {overlap} invalid for {shape}")
  pads = [((r - s) // 2, r - s - (r - s) // 2) if s < r else (0, 0)
          for s, r in zip(spatial, roi_size)]
  padded = [s + lo + hi for s, (lo, hi) in zip(spatial, pads)]
  corners, valid = _window_table(shape[0], padded, roi_size, overlap, sw_batch_size)
  crop = (slice(None),) + tuple(slice(lo, lo + s) for (lo, _), s in zip(pads, spatial))
  return roi_size, [(0, 0), *pads, (0, 0)], corners, valid, crop


def sliding_window_inference(image, roi_size: Sequence[int], predictor: Callable,
                             overlap: float = 0.25, mode: str = "gaussian",
                             sw_batch_size: int = 8, sigma_scale: float = 0.125):
  """Blended window predictions over a whole image (B, *spatial, C), jit-able.

  Args:
    image: (B, *spatial, C); any spatial size (smaller than `roi_size` is padded).
    roi_size: window size, one entry per spatial axis.
    predictor: traceable (n, *roi_size, C) -> (n, *roi_size, K) logits or
      probabilities, always called with n = `sw_batch_size`.
    overlap: fraction of a window shared with its neighbour, in [0, 1).
    mode: 'gaussian' or 'constant' blending weights.
    sw_batch_size: windows per predictor call.
    sigma_scale: Gaussian sigma as a fraction of `roi_size`.

  Returns:
    float32 (B, *spatial, K).
  """
  roi_size, pads, corners, valid, crop = _prepare(jnp.shape(image), roi_size, overlap,
                                                  sw_batch_size)
  image = jnp.pad(jnp.asarray(image), pads)
  weights = jnp.asarray(importance_map(roi_size, mode, sigma_scale))
  return _blend(image, corners, valid, weights, predictor, sw_batch_size)[crop]


def sliding_window_host(image, roi_size: Sequence[int], predictor: Callable,
                        overlap: float = 0.25, mode: str = "gaussian",
                        sw_batch_size: int = 8, sigma_scale: float = 0.125) -> np.ndarray:
  """`sliding_window_inference` in numpy, for a host predictor (numpy in and out).

  For a trainer's `predict_fn` (itself jitted and sharded): the predictor is
  always called with exactly `sw_batch_size` windows, so it compiles once.
  """
  roi_size, pads, corners, valid, crop = _prepare(np.shape(image), roi_size, overlap,
                                                  sw_batch_size)
  image = np.pad(np.asarray(image), pads)
  weights = importance_map(roi_size, mode, sigma_scale)[None, ..., None]
  total, norm = None, np.zeros(image.shape[:-1] + (1,), np.float32)
  for start in range(0, len(corners), sw_batch_size):
    chunk = corners[start:start + sw_batch_size]
    windows = np.stack([image[_window_slice(c, roi_size)][0] for c in chunk])
    preds = np.asarray(predictor(windows), np.float32)
    if total is None:
      total = np.zeros(image.shape[:-1] + preds.shape[-1:], np.float32)
    for corner, pred, real in zip(chunk, preds, valid[start:start + sw_batch_size]):
      if not real:
        continue  # padding of the last chunk
      where = _window_slice(corner, roi_size)
      total[where] += weights * pred[None]
      norm[where] += weights
  return (total / norm)[crop]


def mirrored(predictor: Callable, mirror_axes: Sequence[int] = (0, 1, 2),
             average: str = "probabilities") -> Callable:
  """`predictor` (n, *spatial, C) -> logits, averaged over flips of `mirror_axes`.

  `mirror_axes` count spatial axes (0 = the first after the batch axis). The
  returned predictor runs `predictor` once per subset of the axes (the empty one
  included), always on the same input shape, flips each output back and
  returns the mean softmax probabilities (`average="probabilities"`) or the
  mean logits (`"logits"`). Traceable for jax inputs; numpy in gives numpy out.
  """
  mirror_axes = tuple(int(a) for a in mirror_axes)
  if average not in ("probabilities", "logits") or len(set(mirror_axes)) < len(mirror_axes):
    raise ValueError(f"mirrored: bad average {average!r} or axes {mirror_axes}")
  subsets = [c for k in range(len(mirror_axes) + 1)
             for c in itertools.combinations(mirror_axes, k)]

  def predict(x):
    xp = np if isinstance(x, np.ndarray) else jnp
    if any(not 0 <= a < x.ndim - 2 for a in mirror_axes):
      raise ValueError(f"mirror_axes {mirror_axes} out of range for windows {x.shape}")
    total = 0.0
    for subset in subsets:
      axes = tuple(a + 1 for a in subset)
      flipped = xp.flip(x, axes) if axes else x
      flipped = np.ascontiguousarray(flipped) if xp is np else flipped
      out = xp.asarray(predictor(flipped), xp.float32)
      out = xp.flip(out, axes) if axes else out
      total = total + (_softmax(out, xp) if average == "probabilities" else out)
    return total / len(subsets)

  return predict


def predict_volume(volume, roi_size: Sequence[int], predictor: Callable, *,
                   overlap: float = 0.5, mode: str = "gaussian", sw_batch_size: int = 8,
                   mirror_axes: Sequence[int] = (), batch_divisor: int = 1,
                   sigma_scale: float = 0.125) -> np.ndarray:
  """Blended softmax probabilities (*spatial, K) for one volume (*spatial, C).

  `predictor` is a host function windows (n, *roi_size, C) -> logits, e.g. an
  evaluator's `lambda w: predict_fn({"image": w})`. `sw_batch_size` is rounded
  up to a multiple of `batch_divisor` (`engine.mesh.batch_divisor(mesh)`, or
  `jax.device_count()`, a multiple of it), so a mesh-sharded predictor gets
  full batches; the last chunk is padded. Each window's softmax
  (mirror-averaged over `mirror_axes` when given) is Gaussian-blended; any
  volume size works, axes smaller than the roi are padded and cropped back.
  """
  volume = np.asarray(volume, np.float32)
  if volume.ndim != len(roi_size) + 1:
    raise ValueError(f"volume {volume.shape} needs {len(roi_size)} spatial axes + channels")
  divisor = max(int(batch_divisor), 1)
  chunk = -(-max(int(sw_batch_size), 1) // divisor) * divisor
  probs = mirrored(lambda w: np.asarray(predictor(w)), mirror_axes)
  return sliding_window_host(volume[None], roi_size, probs, overlap, mode, chunk,
                             sigma_scale)[0]


def _softmax(logits, xp):
  e = xp.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _window_slice(corner, roi_size):
  """Index of one window, keeping a length-1 example axis: (b:b+1, *window, :)."""
  b, *starts = (int(c) for c in corner)
  return (slice(b, b + 1), *(slice(s, s + r) for s, r in zip(starts, roi_size)))


def _blend(image, corners, valid, weights, predictor, chunk):
  """Runs the predictor over chunks of windows and accumulates weighted outputs."""
  roi_size = weights.shape
  window_shape = (1, *roi_size, image.shape[-1])

  def crop(corner):
    return jax.lax.dynamic_slice(image, (*corner, 0), window_shape)[0]

  out_spec = jax.eval_shape(predictor, jax.ShapeDtypeStruct(
      (chunk, *window_shape[1:]), image.dtype))
  if out_spec.shape[1:-1] != roi_size:
    raise ValueError(f"predictor output {out_spec.shape} does not match roi {roi_size}")
  total = jnp.zeros((*image.shape[:-1], out_spec.shape[-1]), jnp.float32)
  norm = jnp.zeros(image.shape[:-1] + (1,), jnp.float32)

  def step(carry, xs):
    chunk_corners, chunk_valid = xs
    preds = predictor(jax.vmap(crop)(chunk_corners)).astype(jnp.float32)
    for i in range(chunk):  # accumulate window by window (windows may overlap)
      w = (chunk_valid[i] * weights)[None, ..., None]
      carry = tuple(_add_window(acc, corner_value, chunk_corners[i])
                    for acc, corner_value in zip(carry, (w * preds[i][None], w)))
    return carry, None

  xs = (corners.reshape(-1, chunk, corners.shape[-1]), valid.reshape(-1, chunk))
  (total, norm), _ = jax.lax.scan(step, (total, norm), xs)
  return total / norm


def _add_window(acc, value, corner):
  """acc[corner : corner + value.shape] += value (leading example axis of size 1)."""
  start = (*corner, 0)
  current = jax.lax.dynamic_slice(acc, start, value.shape)
  return jax.lax.dynamic_update_slice(acc, current + value, start)
