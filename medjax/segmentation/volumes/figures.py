"""Case figures for 3D segmentation: orthogonal slices with truth and prediction outlines.

Each figure has three panels through one point (the centre of mass of the
truth's foreground, else the volume centre): axial (an X-Y plane at fixed Z),
coronal (X-Z at fixed Y) and sagittal (Y-Z at fixed X), the first named axis
horizontal. The image is drawn in grey; each foreground class has its own
colour, truth as a solid outline, prediction dashed. `write_case_figures`
draws the best, median and worst case of a metrics table.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.lines as mlines  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medjax.segmentation.volumes import metrics  # noqa: E402

_PLANES = (("axial", 2, (0, 1)), ("coronal", 1, (0, 2)), ("sagittal", 0, (1, 2)))
_AXIS_NAMES = "XYZ"


def slice_centre(truth: np.ndarray) -> tuple[int, int, int]:
  """Voxel index of the truth's foreground centre of mass, else the volume centre."""
  foreground = np.argwhere(np.asarray(truth) > 0)
  if not len(foreground):
    return tuple(s // 2 for s in truth.shape)
  return tuple(int(round(c)) for c in foreground.mean(0))


def orthogonal_slices(image, truth, pred, path: str, title: str = "",
                      spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> str:
  """Writes a PNG of three orthogonal slices with outlines; returns `path`.

  `image` is (X, Y, Z) or (X, Y, Z, C) (channel 0 is shown); `truth` and
  `pred` are integer label maps (X, Y, Z); `spacing` (mm) sets the aspect.
  """
  image = np.asarray(image, np.float32)
  image = image[..., 0] if image.ndim == 4 else image
  truth, pred = np.asarray(truth), np.asarray(pred)
  if not image.shape == truth.shape == pred.shape:
    raise ValueError(f"{title}: image {image.shape}, truth {truth.shape} and prediction "
                     f"{pred.shape} must share one grid")
  centre = slice_centre(truth)
  classes = sorted((set(np.unique(truth).tolist()) | set(np.unique(pred).tolist())) - {0})
  low, high = np.percentile(image, [0.5, 99.5])
  fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
  for ax, (name, fixed, (h, v)) in zip(axes, _PLANES):
    index = [slice(None)] * 3
    index[fixed] = centre[fixed]
    index = tuple(index)
    ax.imshow(image[index].T, cmap="gray", origin="lower", vmin=low, vmax=max(high, low + 1e-6),
              aspect=spacing[v] / spacing[h], interpolation="nearest")
    for k in classes:
      colour = plt.cm.tab10((k - 1) % 10)
      for labels, style in ((truth, "solid"), (pred, "dashed")):
        _outline(ax, labels[index] == k, colour, style)
    ax.set_title(f"{name} ({_AXIS_NAMES[fixed]}={centre[fixed]})", fontsize=9)
    ax.set(xlabel=_AXIS_NAMES[h], ylabel=_AXIS_NAMES[v], xticks=[], yticks=[])
  handles = [mlines.Line2D([], [], color="k", linestyle="solid", label="truth"),
             mlines.Line2D([], [], color="k", linestyle="dashed", label="prediction")]
  handles += [mlines.Line2D([], [], color=plt.cm.tab10((k - 1) % 10), label=f"class {k}")
              for k in classes]
  fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8)
  fig.suptitle(title, fontsize=10)
  fig.subplots_adjust(left=0.05, right=0.98, bottom=0.2, top=0.86, wspace=0.3)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def _outline(ax, mask: np.ndarray, colour, style: str) -> None:
  """Contour of a boolean 2D mask (skipped when it has no edge in the plane)."""
  if mask.any() and not mask.all():
    ax.contour(mask.T.astype(np.float32), levels=[0.5], colors=[colour], linestyles=style,
               linewidths=1.2)


def best_median_worst(rows: Sequence[metrics.CaseMetrics], key: str = "dice_mean",
                      higher_is_better: bool = True) -> dict[str, str]:
  """{"best", "median", "worst"} case ids by `key` (NaN counts as worst).

  Cases are ranked from best to worst (ties keep table order); the median is
  the middle one, rank (n - 1) // 2 from the best.
  """
  if not rows:
    raise ValueError("best_median_worst: no cases")

  def badness(item):
    value = item[1].values[key]
    if np.isnan(value):
      return (True, 0.0, item[0])
    return (False, -value if higher_is_better else value, item[0])

  ranked = [r for _, r in sorted(enumerate(rows), key=badness)]
  return {"best": ranked[0].case_id, "median": ranked[(len(ranked) - 1) // 2].case_id,
          "worst": ranked[-1].case_id}


def write_case_figures(cases: Mapping[str, tuple] | Callable[[str], tuple],
                       rows: Sequence[metrics.CaseMetrics], out_dir: str,
                       key: str = "dice_mean", higher_is_better: bool = True) -> list[str]:
  """Draws the best, median and worst case; returns the PNG paths.

  `cases` maps a case id to (image, truth, pred) or (image, truth, pred,
  spacing), or is a function id -> that tuple (so only three cases are loaded).
  Files are `<out_dir>/<rank>_<case id>.png`.
  """
  os.makedirs(out_dir, exist_ok=True)
  values = {r.case_id: r.values[key] for r in rows}
  paths, drawn = [], {}
  for rank, case_id in best_median_worst(rows, key, higher_is_better).items():
    path = os.path.join(out_dir, f"{rank}_{re.sub(r'[^A-Za-z0-9_.-]', '_', case_id)}.png")
    if case_id in drawn:  # fewer than three cases: one case holds several ranks
      shutil.copyfile(drawn[case_id], path)
    else:
      image, truth, pred, *spacing = cases[case_id] if isinstance(cases, Mapping) \
          else cases(case_id)
      title = f"{rank}: {case_id} ({key} = {values[case_id]:.3f})"
      drawn[case_id] = orthogonal_slices(image, truth, pred, path, title,
                                         *(tuple(s) for s in spacing))
    paths.append(path)
  return paths
