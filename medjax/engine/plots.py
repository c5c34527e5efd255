"""Learning-curve figures from the run's metrics.jsonl.

One panel per scale: losses (training and evaluation together), scores in [0, 1],
distances (HD95 in pixels, or mm where the metric's name says so), and one panel
per other metric (e.g. RMSE, in the target's units). Lines in a panel have
distinct colours; a step logged twice (a resumed run) is drawn once.
"""

from __future__ import annotations

import collections
import json
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_SKIP = ("train/learning_rate", "train/steps_per_sec", "train/grad_norm")
# Bookkeeping, not learning curves: example counts, class prevalence.
_BOOKKEEPING = ("count", "prevalence", "labels", "tasks_scored")
_DISTANCES = ("hd95", "hausdorff", "distance")
_LINESTYLES = ("-", "--", ":", "-.")


def read_jsonl(path: str) -> dict[str, tuple[list[int], list[float]]]:
  """{metric: (steps, values)} from a metrics.jsonl file, in step order; for a step
  written more than once, the last row wins. Non-finite values (strings) are left out."""
  series = collections.defaultdict(dict)
  with open(path, encoding="utf-8") as f:
    for line in f:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:  # a line cut short by a killed run
        continue
      for name, value in row.items():
        if name != "step" and isinstance(value, (int, float)) and math.isfinite(value):
          series[name][int(row["step"])] = float(value)
  return {name: (sorted(by_step), [by_step[s] for s in sorted(by_step)])
          for name, by_step in series.items()}


def panel_of(name: str, values) -> tuple[str, str, str] | None:
  """(sort key, title, y label) of the panel for metric `name`, or None to leave it out."""
  parts = name.split("/")
  if name in _SKIP or len(parts) != 2:  # also per-task metrics (val/roc_auc/<task>)
    return None
  group, metric = parts
  if metric.startswith("num_") or metric in _BOOKKEEPING:
    return None
  if group == "train" or metric.endswith("loss"):
    return "0", "loss", "loss"
  if any(d in metric for d in _DISTANCES):
    unit = "mm" if "mm" in metric else "px"
    return f"2{unit}", f"distance ({unit})", f"distance ({unit})"
  if all(0.0 <= v <= 1.0 for v in values):
    return "1", "scores in [0, 1]", "score"
  return f"3{metric}", metric, metric


def _label(name: str, ylabel: str) -> str:
  unit = ylabel[ylabel.find("("):] if ylabel.startswith("distance") else ""
  return f"{name} {unit}".strip()


def learning_curves(jsonl_path: str, png_path: str):
  """Writes the figure; returns it (None when there is nothing to plot)."""
  if not os.path.exists(jsonl_path):
    return None
  series = read_jsonl(jsonl_path)
  panels = collections.defaultdict(list)
  for name in sorted(series, key=lambda n: (not n.startswith("train/"), n)):
    panel = panel_of(name, series[name][1])
    if panel is not None:
      panels[panel].append(name)
  if not panels:
    return None
  cols = min(3, len(panels))
  rows = -(-len(panels) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.8 * rows), squeeze=False)
  for ax in axes.flat[len(panels):]:
    ax.set_visible(False)
  for ax, ((_, title, ylabel), names) in zip(axes.flat, sorted(panels.items())):
    _draw(ax, series, names, title, ylabel)
  fig.tight_layout()
  fig.savefig(png_path, dpi=100)
  plt.close(fig)
  return fig


def _draw(ax, series, names, title, ylabel):
  colours = plt.get_cmap("tab10" if len(names) <= 10 else "tab20").colors
  bases = {n.split("/")[1] for n in names}
  if ylabel.startswith("distance") and len(bases) == 1:
    ylabel = f"{bases.pop()} {ylabel[len('distance '):]}"  # e.g. "hd95 (px)"
  for i, name in enumerate(names):
    steps, values = series[name]
    ax.plot(steps, values, label=_label(name, title), color=colours[i % len(colours)],
            linestyle=_LINESTYLES[(i // len(colours)) % len(_LINESTYLES)],
            marker=None if name.startswith("train/") else "o", markersize=3)
  ax.set_title(title)
  ax.set_xlabel("step")
  ax.set_ylabel(ylabel)
  ax.legend(fontsize=7)
  ax.grid(alpha=0.3)
