"""End-of-run figures for segmentation: image / truth / prediction overlays."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medjax.segmentation import metrics as metrics_lib  # noqa: E402


def _display(image: np.ndarray) -> np.ndarray:
  """(H, W, C) float -> something imshow shows: grey for 1 or 2 channels, else RGB."""
  if image.shape[-1] == 3:
    return np.clip(image, 0, 1)
  return image[..., 0]


def _overlay(ax, image, mask, colour, title):
  ax.imshow(_display(image), cmap="gray")
  rgba = np.zeros((*mask.shape, 4))
  rgba[mask > 0] = (*colour, 0.45)
  ax.imshow(rgba)
  ax.set_title(title, fontsize=8)
  ax.axis("off")


def write_overlays(evaluator, predict_fn, workdir: str, num_images: int = 4) -> dict:
  """Writes `overlays.png` (rows: image, truth, prediction) for the first images."""
  batch = next(iter(evaluator.batches()))
  real = int(np.sum(batch["_mask"] > 0))
  count = min(num_images, real)
  if count == 0:
    return {}
  logits = np.asarray(evaluator.predict_images(predict_fn, batch["image"][:count]))
  pred = logits.argmax(-1)
  fig, axes = plt.subplots(count, 3, figsize=(9, 3 * count), squeeze=False)
  for i in range(count):
    label, valid = batch["label"][i], batch["valid"][i] > 0
    dice = metrics_lib.binary_scores(pred[i:i + 1], label[None], valid[None])["dice"][0]
    ident = batch["id"][i] if "id" in batch else str(i)
    axes[i, 0].imshow(_display(batch["image"][i]), cmap="gray")
    axes[i, 0].set_title(f"{evaluator.name}: {ident}", fontsize=8)
    axes[i, 0].axis("off")
    _overlay(axes[i, 1], batch["image"][i], label * valid, (0.1, 0.9, 0.1), "truth")
    _overlay(axes[i, 2], batch["image"][i], pred[i] * valid, (0.9, 0.2, 0.1),
             f"prediction (Dice {dice:.3f})")
  fig.tight_layout()
  path = os.path.join(workdir, "overlays.png")
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return {"overlays": path}
