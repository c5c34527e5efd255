"""Segmentation losses in JAX: masked cross-entropy, soft Dice and Dice + CE.

Every loss takes `logits` (B, *spatial, K), integer `labels` (B, *spatial) and
an optional `mask` (B, *spatial) in {0, 1}: pixels with 0 are ignored (outside
a field of view, padding). `example_weight` (B,) scales whole examples; pass the
batch's `_mask` so padded examples contribute nothing. Losses are computed in
float32 and return a scalar; a batch with no valid pixel gives 0.

Reductions:
* `cross_entropy`: mean over all valid pixels of the batch (pixel-weighted,
  as `torch.nn.CrossEntropyLoss(ignore_index=...)`); an image with a larger
  field of view weighs more.
* `soft_dice`: by default per image and class, then averaged over classes and
  over images with `example_weight` (MONAI `DiceLoss(batch=False)`). With
  `batch_dice=True` the intersections and sums are pooled over the batch first
  (nnU-Net's batch Dice), which is steadier for small or absent structures.
* `deep_supervision_loss`: a weighted sum of any of these over the U-Net's
  deep-supervision outputs, labels and mask downsampled by nearest neighbour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp


def _weights(labels, mask, example_weight):
  """Per-pixel weights (B, *spatial) from the pixel mask and example weights."""
  w = jnp.ones(labels.shape, jnp.float32) if mask is None else mask.astype(jnp.float32)
  if example_weight is not None:
    w = w * jnp.asarray(example_weight, jnp.float32).reshape((-1,) + (1,) * (w.ndim - 1))
  return w


def _safe_labels(labels, num_classes):
  """Clips labels into range so ignored pixels may carry any value (e.g. 255)."""
  return jnp.clip(labels, 0, num_classes - 1)


def cross_entropy(logits, labels, mask=None, example_weight=None):
  """Softmax cross-entropy averaged over valid pixels of the batch."""
  logits = logits.astype(jnp.float32)
  labels = _safe_labels(labels, logits.shape[-1])
  w = _weights(labels, mask, example_weight)
  log_p = jax.nn.log_softmax(logits, axis=-1)
  nll = -jnp.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
  return jnp.sum(w * nll) / jnp.maximum(jnp.sum(w), 1e-12)


def dice_per_example(logits, labels, mask=None, include_background: bool = False,
                     smooth: float = 1e-5):
  """Soft Dice coefficient per example and class, (B, K) or (B, K-1).

  Dice = (2 * sum(p * y) + smooth) / (sum(p) + sum(y) + smooth) over the valid
  pixels, with p the softmax probabilities and y the one-hot labels. A class
  absent from both the labels and the prediction scores 1.
  """
  intersection, total = _dice_sums(logits, labels, _weights(labels, mask, None))
  dice = (2 * intersection + smooth) / (total + smooth)
  return dice if include_background else dice[:, 1:]


def _dice_sums(logits, labels, w):
  """Per (example, class) masked sums of p*y and p+y."""
  num_classes = logits.shape[-1]
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  onehot = jax.nn.one_hot(_safe_labels(labels, num_classes), num_classes)
  axes = tuple(range(1, labels.ndim))
  w = w[..., None]
  intersection = jnp.sum(w * probs * onehot, axis=axes)
  total = jnp.sum(w * (probs + onehot), axis=axes)
  return intersection, total


def soft_dice(logits, labels, mask=None, example_weight=None,
              include_background: bool = False, smooth: float = 1e-5,
              batch_dice: bool = False):
  """1 - mean soft Dice over classes (and images, weighted by `example_weight`)."""
  if logits.shape[-1] < 2 and not include_background:
    raise ValueError("excluding the background needs at least two classes")
  if not batch_dice:
    loss = 1 - jnp.mean(dice_per_example(logits, labels, mask, include_background,
                                         smooth), axis=-1)
    ew = jnp.ones(loss.shape) if example_weight is None else jnp.asarray(
        example_weight, jnp.float32)
    return jnp.sum(ew * loss) / jnp.maximum(jnp.sum(ew), 1e-12)
  intersection, total = _dice_sums(logits, labels,
                                   _weights(labels, mask, example_weight))
  dice = (2 * intersection.sum(0) + smooth) / (total.sum(0) + smooth)
  return 1 - jnp.mean(dice if include_background else dice[1:])


def dice_ce(logits, labels, mask=None, example_weight=None, dice_weight: float = 1.0,
            ce_weight: float = 1.0, **dice_kwargs):
  """`dice_weight * soft_dice + ce_weight * cross_entropy` (MONAI `DiceCELoss`)."""
  dice = soft_dice(logits, labels, mask, example_weight, **dice_kwargs)
  ce = cross_entropy(logits, labels, mask, example_weight)
  return dice_weight * dice + ce_weight * ce


def per_class_dice(logits, labels, mask=None, example_weight=None,
                   smooth: float = 1e-5) -> dict:
  """{"dice_class_1": ..., "dice_class_{K-1}": ...}: soft Dice of each foreground
  class, pooled over the batch (for training metrics).

  Sums of p*y and p+y run over the valid pixels of every example (weighted by
  `example_weight`) before the ratio, so a class small in some examples still
  gets one steady number per batch. A class absent from the batch scores near 0
  unless its predicted probability is near 0 everywhere too.
  """
  intersection, total = _dice_sums(logits, labels, _weights(labels, mask, example_weight))
  dice = (2 * intersection.sum(0) + smooth) / (total.sum(0) + smooth)
  return {f"dice_class_{k}": dice[k] for k in range(1, dice.shape[0])}


def deep_supervision_weights(count: int) -> list[float]:
  """nnU-Net's weights 1, 1/2, 1/4, ... normalised to sum 1 (full resolution first).

  nnU-Net also zeroes the lowest resolution's weight; here every output keeps
  its weight (pass `weights` to `deep_supervision_loss` to choose otherwise).
  """
  raw = [0.5**i for i in range(count)]
  return [w / sum(raw) for w in raw]


def deep_supervision_loss(outputs: Sequence, labels, loss_fn: Callable, mask=None,
                          example_weight=None, weights: Sequence[float] | None = None):
  """sum_i weights[i] * loss_fn(outputs[i], labels_i, mask=mask_i, example_weight=...).

  `outputs` are logits at full resolution, 1/2, 1/4, ... (`UNet(deep_supervision=
  True)`); output i is scored against labels and mask sampled every 2^i pixels
  (nearest neighbour, as nnU-Net), which must give its spatial shape. A single
  array is scored as it is.
  """
  if not isinstance(outputs, (tuple, list)):
    return loss_fn(outputs, labels, mask=mask, example_weight=example_weight)
  weights = deep_supervision_weights(len(outputs)) if weights is None else weights
  if len(weights) != len(outputs):
    raise ValueError(f"{len(weights)} weights for {len(outputs)} outputs")
  total = 0.0
  for i, (logits, w) in enumerate(zip(outputs, weights)):
    step = (slice(None),) + (slice(None, None, 2**i),) * (labels.ndim - 1)
    labels_i = labels[step]
    if labels_i.shape != logits.shape[:-1]:
      raise ValueError(f"output {i} has shape {logits.shape}; labels sampled every "
                       f"{2**i} pixels have shape {labels_i.shape}")
    mask_i = None if mask is None else mask[step]
    total = total + w * loss_fn(logits, labels_i, mask=mask_i, example_weight=example_weight)
  return total
