"""Learning-curve figures from the run's metrics.jsonl."""

from __future__ import annotations

import collections
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_SKIP = ("train/learning_rate", "train/steps_per_sec", "train/grad_norm")


def read_jsonl(path: str) -> dict[str, tuple[list[int], list[float]]]:
  """{metric: (steps, values)} from a metrics.jsonl file."""
  series = collections.defaultdict(lambda: ([], []))
  with open(path, encoding="utf-8") as f:
    for line in f:
      row = json.loads(line)
      for name, value in row.items():
        if name != "step" and isinstance(value, (int, float)):
          series[name][0].append(row["step"])
          series[name][1].append(value)
  return dict(series)


def learning_curves(jsonl_path: str, png_path: str) -> None:
  """One panel for the training loss, one per evaluator (all its metrics)."""
  if not os.path.exists(jsonl_path):
    return
  series = read_jsonl(jsonl_path)
  groups = collections.defaultdict(list)
  for name in sorted(series):
    if name in _SKIP or name.split("/")[-1].startswith("num_"):
      continue
    # Scores in [0, 1] share a panel; anything else (losses, distances) gets its own.
    bounded = all(0.0 <= v <= 1.0 for v in series[name][1])
    group = name.split("/")[0]
    groups[group if bounded or group == "train" else name].append(name)
  if not groups:
    return
  fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.5), squeeze=False)
  for ax, (group, names) in zip(axes[0], sorted(groups.items())):
    for name in names:
      ax.plot(*series[name], label=name.split("/", 1)[-1], marker="." if group != "train" else None)
    ax.set_title(group)
    ax.set_xlabel("step")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(png_path, dpi=100)
  plt.close(fig)
