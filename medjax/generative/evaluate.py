"""How close generated images are to real ones, conditional on the same label maps.

    results = evaluate.evaluate_generator(generator, val_examples, feature_fn, key)

One image is generated for each real example's mask, so both sets share one
label distribution and the metrics compare appearance given anatomy. Features of
both sets come from `feature_fn` (e.g. `features.unet_features`); KID, FID and
improved precision / recall are computed on them (`metrics`). Or in two steps, to
keep the generated pairs for `write_report`:

    fake = evaluate.generate_like(generator, val_examples, key)
    results = evaluate.score(val_examples, fake, feature_fn)
    evaluate.write_report(results, val_examples, fake, outdir)
"""

from __future__ import annotations

import json
import math
import os
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from medjax.engine.errors import InputError
from medjax.generative import figures
from medjax.generative import metrics

METRICS_FILE = "sample_metrics.json"
PAIRS_FIGURE = "pairs.png"


def mask_of(example: dict) -> np.ndarray:
  """An example's class map: "mask", else "label" (the segmentation preprocessing's)."""
  return np.asarray(example["mask"] if "mask" in example else example["label"])


def _stack(arrays: Sequence[np.ndarray], what: str) -> np.ndarray:
  shapes = sorted({np.shape(a) for a in arrays})
  if len(shapes) != 1:
    raise InputError(f"{what}: every example must have one size (crop or resize first), "
                     f"got shapes {shapes[:4]}")
  return np.stack(arrays)


def _padded_batches(array: np.ndarray, batch_size: int):
  """(batch of exactly batch_size rows, its number of real rows); the last batch is
  padded with copies of its last row, so that one compiled shape serves every batch."""
  for start in range(0, len(array), batch_size):
    chunk = array[start:start + batch_size]
    pad = batch_size - len(chunk)
    if pad:
      chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
    yield chunk, batch_size - pad


def generate_like(generator, real_examples: Sequence[dict], key,
                  batch_size: int = 8) -> list[dict]:
  """[{"image": (H, W, C) float32, "mask": (H, W) int32}]: one generated image for
  each real example's mask, in order (batch i with key fold_in(key, i))."""
  if not real_examples:
    raise InputError("no real examples to generate for")
  labels = _stack([mask_of(e).astype(np.int32) for e in real_examples], "masks")
  generate = jax.jit(generator.generate)
  fake = []
  for i, (chunk, n) in enumerate(_padded_batches(labels, batch_size)):
    images = np.asarray(generate(generator.params, jnp.asarray(chunk),
                                 jax.random.fold_in(key, i)), np.float32)
    fake.extend({"image": image, "mask": mask} for image, mask in zip(images[:n], chunk[:n]))
  return fake


def features_of(feature_fn: Callable, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
  """(N, D) float64 features of images (N, H, W, C), `batch_size` at a time."""
  out = [np.asarray(feature_fn(chunk), np.float64)[:n]
         for chunk, n in _padded_batches(np.asarray(images, np.float32), batch_size)]
  return np.concatenate(out)


def score(real_examples: Sequence[dict], fake_examples: Sequence[dict],
          feature_fn: Callable, batch_size: int = 8, k: int = 3, seed: int = 0) -> dict:
  """{"kid_mean", "kid_std", "fid", "precision", "recall", "n_real", "n_fake"} of the
  two sets in `feature_fn`'s space (KID: 100 subsets of min(1000, N) samples)."""
  real = _stack([np.asarray(e["image"], np.float32) for e in real_examples], "real images")
  fake = _stack([np.asarray(e["image"], np.float32) for e in fake_examples],
                "generated images")
  if real.shape[1:] != fake.shape[1:]:
    raise InputError(f"generated images are {fake.shape[1:]}, the real ones "
                     f"{real.shape[1:]}: the generator must match the real data's size "
                     "and channels")
  real_f = features_of(feature_fn, real, batch_size)
  fake_f = features_of(feature_fn, fake, batch_size)
  kid_mean, kid_std = metrics.kid(real_f, fake_f, seed=seed)
  precision, recall = metrics.precision_recall(real_f, fake_f, k=k)
  return {"kid_mean": kid_mean, "kid_std": kid_std, "fid": metrics.fid(real_f, fake_f),
          "precision": precision, "recall": recall,
          "n_real": len(real_f), "n_fake": len(fake_f)}


def evaluate_generator(generator, real_examples: Sequence[dict], feature_fn: Callable, key,
                       batch_size: int = 8) -> dict:
  """`score` of the real examples against one generated image per real mask."""
  fake = generate_like(generator, real_examples, key, batch_size)
  return score(real_examples, fake, feature_fn, batch_size)


def _json_value(value):
  if isinstance(value, (float, np.floating)):
    return float(value) if math.isfinite(value) else None
  if isinstance(value, np.integer):
    return int(value)
  return value


def _title(results: dict) -> str:
  return (f"KID {results['kid_mean']:.4g} ± {results['kid_std']:.2g}   "
          f"FID {results['fid']:.4g}   precision {results['precision']:.2f}   "
          f"recall {results['recall']:.2f}   (n = {results['n_real']})")


def write_report(results: dict, real: Sequence[dict], fake: Sequence[dict], outdir: str,
                 pairs: int = 8) -> list[str]:
  """Writes `<outdir>/sample_metrics.json` (the results) and `<outdir>/pairs.png` (the
  first `pairs` real pairs above the generated ones); returns the two paths."""
  os.makedirs(outdir, exist_ok=True)
  json_path = os.path.join(outdir, METRICS_FILE)
  with open(json_path, "w", encoding="utf-8") as f:
    json.dump({k: _json_value(v) for k, v in results.items()}, f, indent=1)
  n = min(pairs, len(real), len(fake))
  real, fake = list(real)[:n], list(fake)[:n]
  figure_path = os.path.join(outdir, PAIRS_FIGURE)
  figures.pair_grid([e["image"] for e in real], [mask_of(e) for e in real],
                    [e["image"] for e in fake], [mask_of(e) for e in fake],
                    figure_path, title=_title(results))
  return [json_path, figure_path]
