"""Segmentation metrics in numpy (host side), MONAI style: functions + an accumulator.

Conventions:
* Inputs are integer predictions and labels `(B, *spatial)` and an optional
  `valid` mask of the same shape (0 = ignored pixel, e.g. outside the DRIVE
  field of view). Binary metrics are for one `foreground` class against the rest.
* A ratio with a zero denominator (e.g. Dice of an image where both prediction
  and label are empty) is NaN and is left out of means (`np.nanmean`).
* HD95 is the symmetric 95th-percentile Hausdorff distance between mask
  boundaries, as MONAI: the max of the two directed 95th percentiles (medpy
  instead takes the percentile of the pooled distances). Boundary pixels are
  foreground pixels with a face neighbour (4- / 6-connectivity) in the
  background or outside the image. Distances are in units of `spacing`.
  Both masks empty: NaN; exactly one empty: inf.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medjax.metrics import ranking

BINARY_METRICS = ("dice", "iou", "sensitivity", "specificity", "accuracy")


def confusion_counts(pred, label, valid=None, foreground: int = 1):
  """Per-image (tp, fp, fn, tn) for `foreground` vs the rest, each of shape (B,)."""
  pred, label = np.asarray(pred) == foreground, np.asarray(label) == foreground
  valid = np.ones(pred.shape, bool) if valid is None else np.asarray(valid) > 0
  axes = tuple(range(1, pred.ndim))
  tp = np.sum(pred & label & valid, axis=axes)
  fp = np.sum(pred & ~label & valid, axis=axes)
  fn = np.sum(~pred & label & valid, axis=axes)
  tn = np.sum(~pred & ~label & valid, axis=axes)
  return tp, fp, fn, tn


def _ratio(num, den):
  num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def scores_from_counts(tp, fp, fn, tn) -> dict[str, np.ndarray]:
  """Dice (= F1), IoU (Jaccard), sensitivity, specificity, accuracy; NaN if 0/0."""
  return {
      "dice": _ratio(2 * tp, 2 * tp + fp + fn),
      "iou": _ratio(tp, tp + fp + fn),
      "sensitivity": _ratio(tp, tp + fn),
      "specificity": _ratio(tn, tn + fp),
      "accuracy": _ratio(tp + tn, tp + fp + fn + tn),
  }


def binary_scores(pred, label, valid=None, foreground: int = 1):
  """Per-image binary metrics for one class: {name: (B,)}."""
  return scores_from_counts(*confusion_counts(pred, label, valid, foreground))


def per_class_scores(pred, label, num_classes: int, valid=None):
  """Per-image, per-class (one vs rest) metrics: {name: (B, num_classes)}."""
  per_class = [binary_scores(pred, label, valid, k) for k in range(num_classes)]
  return {name: np.stack([s[name] for s in per_class], axis=-1)
          for name in BINARY_METRICS}


def pixel_auc(foreground_probs, label, valid=None, foreground: int = 1) -> float:
  """Exact pixel ROC-AUC of `foreground_probs` for `label == foreground`."""
  weights = None if valid is None else np.asarray(valid, np.float64)
  return ranking.roc_auc(np.asarray(label) == foreground, foreground_probs, weights)


def _boundary(mask):
  """Foreground pixels with a face neighbour outside the mask (or the image)."""
  return mask & ~ndimage.binary_erosion(mask, border_value=0)


def _directed_distances(src_edge, dst_edge, spacing):
  """Distance from each boundary pixel of `src` to the nearest one of `dst`."""
  to_dst = ndimage.distance_transform_edt(~dst_edge, sampling=spacing)
  return to_dst[src_edge]


def hausdorff_distance(pred, label, spacing=None, percentile: float = 95.0) -> float:
  """Symmetric percentile Hausdorff distance of two binary masks (one image).

  `spacing` is the pixel size per axis (default 1). `percentile=100` gives the
  classic Hausdorff distance. NaN if both masks are empty, inf if one is.
  """
  pred, label = np.asarray(pred, bool), np.asarray(label, bool)
  if not pred.any() and not label.any():
    return float("nan")
  if not pred.any() or not label.any():
    return float("inf")
  spacing = np.ones(pred.ndim) if spacing is None else np.broadcast_to(
      np.asarray(spacing, np.float64), (pred.ndim,))
  pred_edge, label_edge = _boundary(pred), _boundary(label)
  return float(max(
      np.percentile(_directed_distances(pred_edge, label_edge, spacing), percentile),
      np.percentile(_directed_distances(label_edge, pred_edge, spacing), percentile)))


def hd95(pred, label, valid=None, foreground: int = 1, spacing=None) -> np.ndarray:
  """Per-image HD95 (B,) of `pred == foreground` vs `label == foreground`."""
  pred, label = np.asarray(pred) == foreground, np.asarray(label) == foreground
  if valid is not None:
    valid = np.asarray(valid) > 0
    pred, label = pred & valid, label & valid
  return np.array([hausdorff_distance(p, l, spacing) for p, l in zip(pred, label)])


class BinnedAUC:
  """Pixel ROC-AUC from class histograms of the foreground log-odds.

  Constant memory for any number of pixels: scores are binned uniformly in
  log-odds over [-limit, limit] (clipped beyond), and pairs in one bin count as
  ties. With 4096 bins this agrees with the exact AUC within ~1e-4 on typical
  outputs (tests check 1e-3).
  """

  def __init__(self, bins: int = 4096, limit: float = 16.0):
    self.edges_limit, self.bins = limit, bins
    self.pos = np.zeros(bins, np.float64)
    self.neg = np.zeros(bins, np.float64)

  def update(self, probs, is_positive, weights) -> None:
    p = np.clip(np.asarray(probs, np.float64), 1e-300, 1.0)
    log_odds = np.log(p) - np.log1p(-np.minimum(p, 1 - 1e-16))
    scaled = (log_odds + self.edges_limit) / (2 * self.edges_limit) * self.bins
    index = np.clip(scaled.astype(np.int64), 0, self.bins - 1).reshape(-1)
    weights = np.asarray(weights, np.float64).reshape(-1)
    positive = np.asarray(is_positive, bool).reshape(-1)
    self.pos += np.bincount(index, weights * positive, self.bins)
    self.neg += np.bincount(index, weights * ~positive, self.bins)

  def result(self) -> float:
    n_pos, n_neg = self.pos.sum(), self.neg.sum()
    if n_pos == 0 or n_neg == 0:
      return float("nan")
    neg_below = np.cumsum(self.neg) - self.neg
    return float(np.sum(self.pos * (neg_below + 0.5 * self.neg)) / (n_pos * n_neg))


class SegmentationMetrics:
  """Accumulates per-image and pooled (dataset-level) metrics over batches.

  `update` takes model outputs (B, *spatial, K) (logits when `from_logits`,
  else probabilities), integer labels (B, *spatial), an optional pixel `valid`
  mask and an optional `example_mask` (B,) (the batch's `_mask`; 0 = padding).
  `aggregate` returns floats:
  * `dice`, `iou`, `sensitivity`, `specificity`, `accuracy`, `hd95`: mean over
    images of the per-image values for `foreground` (NaN values skipped; one
    image with an empty prediction or label makes `hd95` inf, as MONAI);
  * `pooled_*` for the same metrics and `pooled_f1` (= `pooled_dice`): from the
    confusion counts of all valid pixels of the dataset;
  * `pixel_auc`: pooled pixel ROC-AUC of the foreground probability, exact when
    `auc_bins` is None (stores every pixel), else binned (`BinnedAUC`);
  * with more than two classes, `dice_class{k}` / `pooled_dice_class{k}`.
  """

  def __init__(self, num_classes: int = 2, foreground: int = 1, from_logits: bool = True,
               spacing=None, compute_hd95: bool = True, auc_bins: int | None = 4096):
    self.num_classes, self.foreground, self.from_logits = num_classes, foreground, from_logits
    self.spacing, self.compute_hd95, self.auc_bins = spacing, compute_hd95, auc_bins
    self.reset()

  def reset(self) -> None:
    self._per_image = {name: [] for name in BINARY_METRICS + ("hd95",)}
    self._class_dice = []
    self._class_counts = np.zeros((self.num_classes, 4))
    self._auc = BinnedAUC(self.auc_bins) if self.auc_bins else None
    self._exact = []  # (is_foreground, probs) pairs when the AUC is exact

  def update(self, outputs, labels, valid=None, example_mask=None) -> None:
    probs, labels, valid = self._real_examples(outputs, labels, valid, example_mask)
    pred = probs.argmax(-1)
    for name, values in binary_scores(pred, labels, valid, self.foreground).items():
      self._per_image[name].extend(values)
    if self.compute_hd95:
      self._per_image["hd95"].extend(
          hd95(pred, labels, valid, self.foreground, self.spacing))
    counts = [confusion_counts(pred, labels, valid, k) for k in range(self.num_classes)]
    self._class_counts += np.array([[c.sum() for c in kc] for kc in counts])
    self._class_dice.append(np.stack(
        [scores_from_counts(*kc)["dice"] for kc in counts], axis=-1))
    fg_probs, is_fg = probs[..., self.foreground], labels == self.foreground
    if self._auc is not None:
      self._auc.update(fg_probs, is_fg, valid)
    else:
      self._exact.append((is_fg[valid], fg_probs[valid]))

  def _real_examples(self, outputs, labels, valid, example_mask):
    """Probabilities, labels and a boolean valid mask of the real examples."""
    outputs = np.asarray(outputs, np.float32)
    if outputs.shape[-1] != self.num_classes:
      raise ValueError(f"expected {self.num_classes} classes, got {outputs.shape}")
    probs = _softmax(outputs) if self.from_logits else outputs
    labels = np.asarray(labels)
    valid = np.ones(labels.shape, bool) if valid is None else np.asarray(valid) > 0
    if example_mask is not None:
      keep = np.asarray(example_mask) > 0
      probs, labels, valid = probs[keep], labels[keep], valid[keep]
    return probs, labels, valid

  def aggregate(self) -> dict[str, float]:
    per_image = {k: np.asarray(v, np.float64) for k, v in self._per_image.items()}
    out = {"num_images": float(per_image["dice"].size)}
    for name, values in per_image.items():
      if name != "hd95" or self.compute_hd95:
        out[name] = _nanmean(values)
    pooled = scores_from_counts(*self._class_counts[self.foreground])
    out.update({f"pooled_{name}": float(v) for name, v in pooled.items()})
    out["pooled_f1"] = out["pooled_dice"]
    out["pixel_auc"] = self._pixel_auc()
    if self.num_classes > 2:
      class_dice = np.concatenate(self._class_dice) if self._class_dice else np.zeros(
          (0, self.num_classes))
      pooled_dice = scores_from_counts(*self._class_counts.T)["dice"]
      for k in range(self.num_classes):
        out[f"dice_class{k}"] = _nanmean(class_dice[:, k])
        out[f"pooled_dice_class{k}"] = float(pooled_dice[k])
    return out

  def _pixel_auc(self) -> float:
    if self._auc is not None:
      return self._auc.result()
    if not self._exact:
      return float("nan")
    is_fg, probs = (np.concatenate(parts) for parts in zip(*self._exact))
    return ranking.roc_auc(is_fg, probs)


def _softmax(logits):
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _nanmean(values) -> float:
  values = np.asarray(values, np.float64)
  if values.size == 0 or np.all(np.isnan(values)):
    return float("nan")
  return float(np.nanmean(values))
