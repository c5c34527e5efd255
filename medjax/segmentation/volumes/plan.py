"""Experiment planning in the spirit of nnU-Net: dataset fingerprint -> training plan.

`fingerprint` reads every case once (spacings and shapes in canonical RAS axis
order, shape after the non-zero crop, class voxel counts, foreground intensity
statistics). `make_plan` turns it into settings with these rules:

- target spacing: the median spacing per axis. Anisotropy rule (nnU-Net): if
  the coarsest axis is more than 3x coarser than every other axis *and* has
  fewer than a third of their voxels, it gets the 10th percentile of its
  spacings instead (never finer than the other axes), so thick-slice cases are
  not all interpolated down to the coarsest slices.
- patch size: the median shape after resampling, rounded up to a multiple of
  2**pools (medjax's U-Net pools every axis by 2 per level). pools is the
  number of halvings that keep the smallest patch axis >= 4 voxels at the
  bottom, at most MAX_LEVELS - 1. While the estimated memory for `min_batch`
  patches exceeds `memory_mb`, the largest axis shrinks by 2**pools.
- features: 32 at the top, doubling per level, capped at 320.
- batch size: as many patches as fit in `memory_mb`, at most `max_batch` and at
  most what covers 5% of the dataset's voxels per step (nnU-Net's cap), at
  least `min_batch`.
- normalisation: "ct" if a channel's modality is CT, else "mri"; non-zero-mask
  normalisation is suggested when cropping removes over a quarter of the voxels.

The memory estimate (`estimate_memory_mb`) is a rule of thumb for a float32
training step: ACTIVATION_FACTOR values kept per voxel and feature of every
level (encoder and decoder tensors saved for the backward pass, their
gradients and workspace), plus 4 copies of the parameters (weights, gradients,
two Adam moments).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence

import numpy as np

from medjax.engine.errors import InputError
from medjax.segmentation.volumes import geometry, intensity

ANISOTROPY = 3.0
MIN_BOTTOM = 4  # voxels per axis at the lowest level
MAX_LEVELS = 5
BASE_FEATURES = 32
MAX_FEATURES = 320
DATASET_FRACTION = 0.05
ACTIVATION_FACTOR = 20.0  # see the module docstring; checked against XLA in the report
PARAM_COPIES = 4


def _case_entry(image, label, num_classes: int) -> dict:
  _, _, record = geometry.forward(image, None, None, crop=True)
  entry = {"path": image.path, "spacing": list(record.spacing),
           "shape": list(record.canonical_shape), "cropped_shape": list(record.cropped_shape)}
  if label is not None:
    values = np.asarray(getattr(label, "array", label)).astype(np.int64)
    counts = np.bincount(values.ravel(), minlength=num_classes)
    if values.min() < 0 or len(counts) > num_classes:
      name = getattr(label, "path", "") or image.path
      raise InputError(f"{name}: label values {values.min()}..{values.max()} outside "
                       f"0..{num_classes - 1}")
    entry["class_voxels"] = [int(c) for c in counts]
  return entry


def fingerprint(cases: Iterable, num_classes: int, modalities: Sequence[str] = ("MRI",),
                max_voxels_per_case: int = 10000, seed: int = 0) -> dict:
  """Dataset fingerprint of (image Volume, label Volume | None) pairs (see module doc)."""
  rng = np.random.default_rng(seed)
  entries, samples, channels = [], [], set()
  for image, label in cases:
    entries.append(_case_entry(image, label, num_classes))
    channels.add(1 if np.ndim(image.array) == 3 else int(np.shape(image.array)[-1]))
    if label is not None:
      samples.append(intensity.sample_foreground(image, label, max_voxels_per_case, rng))
  if not entries:
    raise InputError("fingerprint: no cases")
  if len(channels) != 1:
    raise InputError(f"fingerprint: cases have different channel counts {sorted(channels)}")
  labelled = [e["class_voxels"] for e in entries if "class_voxels" in e]
  totals = np.sum(labelled, axis=0) if labelled else np.zeros(num_classes, int)
  return {"num_cases": len(entries), "num_classes": int(num_classes),
          "channels": channels.pop(), "modalities": list(modalities),
          "class_voxels": [int(t) for t in totals],
          "class_fraction": [float(t) / max(int(totals.sum()), 1) for t in totals],
          "intensity": intensity.summarise(samples) if samples else None,
          "cases": entries}


def target_spacing(spacings: np.ndarray, cropped_shapes: np.ndarray) -> np.ndarray:
  """Median spacing, with nnU-Net's rule for one much coarser axis (module doc)."""
  spacings = np.asarray(spacings, float)
  target = np.median(spacings, axis=0)
  sizes = np.median(np.asarray(cropped_shapes, float), axis=0)
  worst = int(np.argmax(target))
  others = [a for a in range(3) if a != worst]
  coarse = target[worst] > ANISOTROPY * max(target[others])
  few_voxels = sizes[worst] * ANISOTROPY < min(sizes[others])
  if coarse and few_voxels:
    target[worst] = max(np.percentile(spacings[:, worst], 10), max(target[others]))
  return target


def num_pools(patch: Sequence[int], max_levels: int = MAX_LEVELS) -> int:
  """Halvings that keep every patch axis >= MIN_BOTTOM voxels (at most max_levels - 1)."""
  pools = 0
  while pools < max_levels - 1 and min(patch) / 2 ** (pools + 1) >= MIN_BOTTOM:
    pools += 1
  return pools


def features_for(levels: int) -> tuple[int, ...]:
  return tuple(min(BASE_FEATURES * 2**level, MAX_FEATURES) for level in range(levels))


def _param_count(features: Sequence[int], in_channels: int, num_classes: int) -> int:
  """Approximate U-Net parameter count (3^3 convs, 2 per block; upsampling; head)."""
  count, previous = 0, in_channels
  for f in features:  # encoder
    count += 27 * (previous * f + f * f)
    previous = f
  for low, f in zip(features[::-1], features[-2::-1]):  # decoder
    count += 8 * low * f + 27 * (2 * f * f + f * f)
  return count + features[0] * num_classes


def estimate_memory_mb(patch, features, batch: int, in_channels: int = 1,
                       num_classes: int = 2) -> float:
  """Rule-of-thumb float32 training-step memory in MiB (module doc)."""
  per_sample = sum(math.prod(p // 2**level for p in patch) * f
                   for level, f in enumerate(features))
  activations = 4.0 * ACTIVATION_FACTOR * per_sample * batch
  params = 4.0 * PARAM_COPIES * _param_count(features, in_channels, num_classes)
  return (activations + params) / 2**20


def _round_up(patch, multiple: int) -> list[int]:
  return [int(math.ceil(p / multiple) * multiple) for p in patch]


def patch_and_depth(median_shape, memory_mb: float, min_batch: int, in_channels: int,
                    num_classes: int, max_levels: int = MAX_LEVELS):
  """(patch, pools): the median shape made poolable, shrunk until min_batch patches fit."""
  patch = [max(int(round(s)), MIN_BOTTOM) for s in median_shape]
  pools = num_pools(patch, max_levels)
  patch = _round_up(patch, 2**pools)
  while estimate_memory_mb(patch, features_for(pools + 1), min_batch, in_channels,
                           num_classes) > memory_mb:
    axis = int(np.argmax(patch))
    if patch[axis] - 2**pools < MIN_BOTTOM:
      raise InputError(f"memory_mb={memory_mb} is too small for {min_batch} patches of "
                       f"{tuple(patch)} voxels")
    patch[axis] -= 2**pools
    pools = num_pools(patch, max_levels)
  return tuple(patch), pools


def make_plan(fp: dict, memory_mb: float = 8192, max_batch: int = 32, min_batch: int = 2,
              max_levels: int = MAX_LEVELS) -> dict:
  """Training plan (JSON-ready dict) for a `fingerprint` (see the module doc)."""
  cases = fp["cases"]
  spacings = np.asarray([c["spacing"] for c in cases], float)
  cropped = np.asarray([c["cropped_shape"] for c in cases], float)
  target = target_spacing(spacings, cropped)
  median_shape = np.median(cropped * spacings / target, axis=0)
  channels, classes = int(fp["channels"]), int(fp["num_classes"])
  patch, pools = patch_and_depth(median_shape, memory_mb, min_batch, channels, classes,
                                 max_levels)
  features = features_for(pools + 1)
  fixed = estimate_memory_mb(patch, features, 0, channels, classes)
  per_patch = estimate_memory_mb(patch, features, 1, channels, classes) - fixed
  fit = int((memory_mb - fixed) // per_patch)
  coverage = round(DATASET_FRACTION * len(cases) * np.prod(median_shape) / np.prod(patch))
  batch = max(min(fit, max_batch, coverage), min_batch)
  ct = any(str(m).upper() == "CT" for m in fp.get("modalities", ()))
  shapes = np.asarray([c["shape"] for c in cases], float)
  kept = float(np.median(np.prod(cropped, 1) / np.prod(shapes, 1)))
  return {
      "target_spacing": [float(t) for t in target],
      "patch_size": list(patch),
      "batch_size": int(batch),
      "features": list(features),
      "num_pools": int(pools),
      "normalisation": "ct" if ct else "mri",
      "use_nonzero_mask": (not ct) and kept < 0.75,
      "intensity": fp.get("intensity") if ct else None,
      "memory_mb": float(memory_mb),
      "estimated_memory_mb": round(estimate_memory_mb(patch, features, batch, channels,
                                                      classes), 1),
      "median_spacing": [float(s) for s in np.median(spacings, 0)],
      "median_shape": [round(float(s), 1) for s in median_shape],
      "num_cases": len(cases), "num_classes": classes, "channels": channels,
      "class_fraction": fp.get("class_fraction"),
  }


def _tuple(values, fmt) -> str:
  return "(" + ",".join(fmt(v) for v in values) + ")"


def as_overrides(plan: dict) -> list[str]:
  """The plan as `--config.` flags for experiments/segmentation.py."""
  spacing = _tuple(plan["target_spacing"], lambda v: repr(round(float(v), 6)))
  return [f"--config.task.patch_size={_tuple(plan['patch_size'], str)}",
          f"--config.task.model.features={_tuple(plan['features'], str)}",
          f"--config.task.volume.target_spacing={spacing}",
          f"--config.task.volume.normalisation={plan['normalisation']}",
          f"--config.task.num_classes={plan['num_classes']}",
          f"--config.batch_size={plan['batch_size']}"]


def to_json(plan: dict) -> str:
  return json.dumps(plan, indent=2)
