"""Figures for attributions: 2D overlays, 3D orthogonal slices, feature bars, curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _grey(image) -> np.ndarray:
  """(H, W) or (H, W, C) -> a 2D image (RGB kept, other channel counts: the first)."""
  image = np.asarray(image, np.float32)
  if image.ndim == 3 and image.shape[-1] != 3:
    image = image[..., 0]
  lo, hi = np.percentile(image, [1, 99])
  return np.clip((image - lo) / max(hi - lo, 1e-9), 0, 1)


def _show(ax, image, heatmap, signed: bool, alpha: float, lim: float):
  ax.imshow(_grey(image), cmap="gray")
  heatmap = np.asarray(heatmap, np.float32)
  if signed:
    im = ax.imshow(heatmap, cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=alpha)
  else:
    im = ax.imshow(np.abs(heatmap), cmap="inferno", vmin=0, vmax=lim, alpha=alpha)
  ax.set_xticks([])
  ax.set_yticks([])
  return im


def _limit(heatmap) -> float:
  return max(float(np.abs(np.asarray(heatmap)).max()), 1e-12)


def overlays_2d(images, heatmaps, path: str, titles=None, signed: bool = False,
                alpha: float = 0.5, title: str = "") -> None:
  """Images (N, H, W[, C]) above their attribution maps (N, H, W) laid over them.

  `signed` shows the sign (red +, blue -); otherwise |attribution| from 0 to its max.
  """
  n = len(images)
  fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 5.4), squeeze=False)
  for i in range(n):
    axes[0, i].imshow(_grey(images[i]), cmap="gray")
    axes[0, i].set_axis_off()
    if titles is not None:
      axes[0, i].set_title(titles[i], fontsize=8)
    im = _show(axes[1, i], images[i], heatmaps[i], signed, alpha, _limit(heatmaps[i]))
    fig.colorbar(im, ax=axes[1, i], fraction=0.046)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def orthogonal_slices(volume, heatmap, path: str, centre=None, signed: bool = False,
                      alpha: float = 0.5, title: str = "") -> None:
  """Three orthogonal slices of a volume (D, H, W[, C]) through `centre` with the map.

  `centre` defaults to the volume's centre; pass the map's argmax to cut through its peak.
  """
  volume, heatmap = np.asarray(volume), np.asarray(heatmap)
  centre = [s // 2 for s in heatmap.shape] if centre is None else list(centre)
  lim = _limit(heatmap)
  fig, axes = plt.subplots(1, 3, figsize=(11, 4))
  for axis, ax in enumerate(axes):
    index = [slice(None)] * 3
    index[axis] = centre[axis]
    im = _show(ax, volume[tuple(index)], heatmap[tuple(index)], signed, alpha, lim)
    ax.set_title(f"axis {axis} = {centre[axis]}")
  fig.colorbar(im, ax=list(axes), fraction=0.02)
  fig.suptitle(title)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def feature_bars(attribution, names, path: str, top: int = 20, title: str = "",
                 xlabel: str = "attribution") -> None:
  """Horizontal bars of the `top` features by |attribution| (tabular, or a sequence summed)."""
  values = np.asarray(attribution, np.float64)
  order = np.argsort(-np.abs(values))[:top]
  fig, ax = plt.subplots(figsize=(7, 0.3 * len(order) + 1.5))
  ax.barh(range(len(order)), values[order], color=np.where(values[order] > 0, "C3", "C0"))
  ax.set(yticks=range(len(order)), yticklabels=[str(names[i])[:50] for i in order],
         xlabel=xlabel, title=title)
  ax.axvline(0, color="k", lw=0.5)
  ax.invert_yaxis()
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def sequence_heatmap(attribution, names, path: str, mask=None, time_step: float = 1.0,
                     top: int = 12, title: str = "", time_label: str = "time") -> None:
  """A (T, F) attribution as a time x feature heat map (top features by total |.|)
  beside its sum over time; dots mark observed entries when `mask` (T, F) is given."""
  attribution = np.asarray(attribution, np.float64)
  total = attribution.sum(0)
  order = np.argsort(-np.abs(total))[:top]
  k = len(order)
  fig, axes = plt.subplots(1, 2, figsize=(13, 0.35 * k + 2),
                           gridspec_kw={"width_ratios": [3, 1]})
  lim = _limit(attribution[:, order])
  im = axes[0].imshow(attribution[:, order].T, aspect="auto", cmap="RdBu_r", vmin=-lim,
                      vmax=lim, extent=(0, len(attribution) * time_step, k - 0.5, -0.5))
  if mask is not None:
    obs_t, obs_v = np.nonzero(np.asarray(mask)[:, order])
    axes[0].scatter((obs_t + 0.5) * time_step, obs_v, s=3, c="k", marker=".")
  axes[0].set(yticks=range(k), yticklabels=[str(names[i]) for i in order], xlabel=time_label)
  fig.colorbar(im, ax=axes[0], label="attribution")
  axes[1].barh(range(k), total[order], color=np.where(total[order] > 0, "C3", "C0"))
  axes[1].set(yticks=range(k), yticklabels=[], ylim=(k - 0.5, -0.5), xlabel="sum over time")
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def faithfulness_curves(result: dict, path: str, title: str = "") -> None:
  """Mean deletion and insertion curves of `checks.faithfulness`'s result vs random."""
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, mode in zip(axes, ("deletion", "insertion")):
    r = result["per_example"][mode]
    ax.plot(r["fraction"], r["curve"].mean(0), label=f"attribution (AUC {r['auc'].mean():.3g})")
    ax.plot(r["fraction"], r["random_curve"].mean(0), "--",
            label=f"random (AUC {r['random_auc'].mean():.3g})")
    ax.set(xlabel=f"fraction of features {'removed' if mode == 'deletion' else 'inserted'}",
           ylabel="score", title=mode)
    ax.legend()
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
