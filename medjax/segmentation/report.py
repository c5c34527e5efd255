"""End-of-run figures for segmentation: image / truth / prediction / error overlays."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as mpatches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medjax.segmentation import metrics as metrics_lib  # noqa: E402

# Error-map colours (RGB) of foreground (any class > 0) against background.
ERROR_COLOURS = {"true positive": (0.1, 0.8, 0.1), "false positive": (0.95, 0.1, 0.1),
                 "false negative": (0.1, 0.35, 1.0)}
_ALPHA = 0.55


def _display(image: np.ndarray) -> np.ndarray:
  """(H, W, C) float -> something imshow shows: grey for 1 or 2 channels, else RGB."""
  if image.shape[-1] == 3:
    return np.clip(image, 0, 1)
  return image[..., 0]


def error_map(truth: np.ndarray, pred: np.ndarray, valid: np.ndarray) -> np.ndarray:
  """(H, W, 4) RGBA: true positives green, false positives red, false negatives blue;
  true negatives and pixels outside `valid` transparent. Foreground is any class > 0,
  so a pixel of the wrong foreground class counts as a true positive here."""
  truth, pred, valid = truth > 0, pred > 0, valid > 0
  rgba = np.zeros((*truth.shape, 4))
  for name, where in (("true positive", truth & pred), ("false positive", ~truth & pred),
                      ("false negative", truth & ~pred)):
    rgba[where & valid] = (*ERROR_COLOURS[name], _ALPHA)
  return rgba


def _panel(ax, image, overlay, title):
  ax.imshow(_display(image), cmap="gray")
  if overlay is not None:
    ax.imshow(overlay)
  ax.set_title(title, fontsize=8)
  ax.axis("off")


def _mask_overlay(mask, colour):
  rgba = np.zeros((*mask.shape, 4))
  rgba[mask > 0] = (*colour, 0.45)
  return rgba


def _row(axes, image, label, pred, valid, title):
  """One image's four panels: image, truth, prediction, errors."""
  dice = metrics_lib.binary_scores(pred[None], label[None], valid[None])["dice"][0]
  errors = error_map(label, pred, valid)
  fp = int(np.sum((label == 0) & (pred > 0) & valid))
  fn = int(np.sum((label > 0) & (pred == 0) & valid))
  _panel(axes[0], image, None, title)
  _panel(axes[1], image, _mask_overlay(label * valid, (0.1, 0.9, 0.1)), "truth")
  _panel(axes[2], image, _mask_overlay(pred * valid, (1.0, 0.75, 0.0)),
         f"prediction (Dice {dice:.3f})")
  _panel(axes[3], image, errors, f"errors (FP {fp} px, FN {fn} px)")


def write_overlays(evaluator, predict_fn, workdir: str, num_images: int = 4) -> dict:
  """Writes `overlays.png` (columns: image, truth, prediction, errors; a row per image)
  for the first images of the evaluator's first batch."""
  batch = next(iter(evaluator.batches()))
  real = int(np.sum(batch["_mask"] > 0))
  count = min(num_images, real)
  if count == 0:
    return {}
  logits = np.asarray(evaluator.predict_images(predict_fn, batch["image"][:count]))
  pred = logits.argmax(-1)
  fig, axes = plt.subplots(count, 4, figsize=(12, 3 * count + 0.6), squeeze=False)
  for i in range(count):
    ident = batch["id"][i] if "id" in batch else str(i)
    _row(axes[i], batch["image"][i], batch["label"][i], pred[i], batch["valid"][i] > 0,
         f"{evaluator.name}: {ident}")
  handles = [mpatches.Patch(color=colour, alpha=_ALPHA, label=name)
             for name, colour in ERROR_COLOURS.items()]
  fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False,
             title="errors: foreground (any class > 0) against background",
             title_fontsize=8)
  fig.tight_layout(rect=(0, 0.6 / (3 * count + 0.6), 1, 1))
  path = os.path.join(workdir, "overlays.png")
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return {"overlays": path}
