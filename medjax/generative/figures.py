"""Figures of generated image / mask pairs: real beside generated, and training grids.

Images are shown in grey (their first channel; three channels as RGB) with the
outline of each foreground class of the mask drawn over them.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_PANEL_INCHES = 1.6
_DPI = 100
_CONTOUR_COLOURS = ("#ff3b30", "#34c759", "#0a84ff", "#ffcc00", "#af52de", "#ff9500")


def _display(image) -> np.ndarray:
  """(H, W[, C]) float in [0, 1] -> grey (first channel) or RGB for three channels."""
  image = np.asarray(image, np.float32)
  if image.ndim == 3:
    image = image if image.shape[-1] == 3 else image[..., 0]
  return np.clip(image, 0.0, 1.0)


def _panel(ax, image, mask, title: str = "") -> None:
  """One image with the contour of each foreground class of `mask` over it."""
  ax.imshow(_display(image), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
  mask = np.asarray(mask)
  for k in np.unique(mask):
    if k > 0:
      ax.contour(mask == k, levels=[0.5], colors=_CONTOUR_COLOURS[(k - 1) % 6],
                 linewidths=0.8)
  if title:
    ax.set_title(title, fontsize=7)
  ax.set_xticks([])
  ax.set_yticks([])


def _save(fig, path: str, title: str = "") -> None:
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=_DPI)
  plt.close(fig)


def pair_grid(real_images, real_masks, fake_images, fake_masks, path: str,
              title: str = "", columns: int = 8) -> None:
  """Rows of real pairs (labelled "real"), each above a row of generated pairs
  ("generated"); column j of a generated row is the j-th generated pair, so a
  generated image for the mask of the real image above it sits below it. More than
  `columns` pairs wrap onto further real / generated row pairs.
  """
  n = len(real_images)
  if not n or len(fake_images) != n or len(real_masks) != n or len(fake_masks) != n:
    raise ValueError(f"pair_grid: expected equal, non-zero counts, got {len(real_images)} "
                     f"real images, {len(real_masks)} masks, {len(fake_images)} generated "
                     f"images, {len(fake_masks)} masks")
  columns = max(1, min(columns, n))
  blocks = -(-n // columns)
  fig, axes = plt.subplots(2 * blocks, columns, squeeze=False,
                           figsize=(_PANEL_INCHES * columns + 0.4,
                                    2 * blocks * _PANEL_INCHES + 0.4))
  for b in range(blocks):
    axes[2 * b, 0].set_ylabel("real", fontsize=8)
    axes[2 * b + 1, 0].set_ylabel("generated", fontsize=8)
    for j in range(columns):
      i = b * columns + j
      if i >= n:
        axes[2 * b, j].set_axis_off()
        axes[2 * b + 1, j].set_axis_off()
        continue
      _panel(axes[2 * b, j], real_images[i], real_masks[i])
      _panel(axes[2 * b + 1, j], fake_images[i], fake_masks[i])
  _save(fig, path, title)


def sample_grid(images, masks, path: str, columns: int = 8, title: str = "") -> None:
  """Generated pairs in a grid of `columns` columns (the periodic training figures)."""
  n = len(images)
  columns = max(1, min(columns, n))
  rows = -(-n // columns)
  fig, axes = plt.subplots(rows, columns, squeeze=False,
                           figsize=(_PANEL_INCHES * columns, _PANEL_INCHES * rows + 0.3))
  for i, ax in enumerate(axes.flat):
    if i < n:
      _panel(ax, images[i], masks[i])
    else:
      ax.set_axis_off()
  _save(fig, path, title)
