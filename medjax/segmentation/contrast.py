"""Optional CLAHE contrast normalisation (`task.clahe`), the same in training and prediction.

Contrast-limited adaptive histogram equalisation (scikit-image's
`exposure.equalize_adapthist`) evens out illumination and contrast between
fundus cameras. It runs inside the task's preprocessing, so training batches,
validation and `--mode=predict` / `--mode=evaluate` inputs all get it.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from medjax.engine.errors import InputError

CACHE_SIZE = 512  # equalised images kept per preprocess function (training re-reads them)


def require_skimage():
  """scikit-image's `exposure` module, or InputError saying how to get it."""
  try:
    from skimage import exposure  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise InputError("config.task.clahe.enabled needs scikit-image, which is not installed: "
                     "pip install scikit-image (or set --config.task.clahe.enabled=False)"
                     ) from None
  return exposure


def clahe(image: np.ndarray, clip_limit: float = 0.01, kernel_size: int = 0) -> np.ndarray:
  """(H, W, C) float in [0, 1] -> CLAHE per channel, float32 in [0, 1].

  `kernel_size` 0 is scikit-image's default (1/8 of the image per axis).
  """
  exposure = require_skimage()
  kernel = int(kernel_size) or None
  image = np.clip(np.asarray(image, np.float64), 0.0, 1.0)
  channels = [exposure.equalize_adapthist(image[..., c], kernel_size=kernel,
                                          clip_limit=clip_limit)
              for c in range(image.shape[-1])]
  return np.stack(channels, -1).astype(np.float32)


def with_clahe(preprocess, clahe_config):
  """`preprocess` followed by CLAHE on its "image" when `clahe_config.enabled`.

  Fails at once (not at the first batch) when scikit-image is missing. Results are
  cached by the image's bytes (up to CACHE_SIZE), as training sees each image every epoch.
  """
  if not clahe_config.enabled:
    return preprocess
  require_skimage()
  if not 0 < clahe_config.clip_limit <= 1:
    raise InputError(f"config.task.clahe.clip_limit must be in (0, 1], got "
                     f"{clahe_config.clip_limit}")
  apply = functools.partial(clahe, clip_limit=clahe_config.clip_limit,
                            kernel_size=clahe_config.kernel_size)

  cache = {}

  def preprocess_with_clahe(example):
    out = preprocess(example)
    image = np.ascontiguousarray(out["image"])
    key = (image.shape, hashlib.blake2b(image.tobytes(), digest_size=16).digest())
    if key not in cache:
      equalised = apply(image)
      if len(cache) >= CACHE_SIZE:
        return {**out, "image": equalised}
      cache[key] = equalised
    return {**out, "image": cache[key]}

  return preprocess_with_clahe
