"""Files a molecule run leaves in its workdir: predictions, invalid SMILES, label
counts, figures."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from medjax.metrics import ranking  # noqa: E402

MAX_PANELS = 12


def _grid(n: int):
  cols = min(n, 4)
  rows = -(-n // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.0 * rows), squeeze=False)
  for ax in axes.flat[n:]:
    ax.axis("off")
  return fig, axes.flat


def plot_predicted_vs_true(targets, predictions, names: Sequence[str], path: str,
                           title: str = "") -> None:
  n = min(len(names), MAX_PANELS)
  fig, axes = _grid(n)
  for t, ax in zip(range(n), axes):
    keep = ~np.isnan(targets[:, t])
    y, p = targets[keep, t], predictions[keep, t]
    ax.scatter(y, p, s=6, alpha=0.5)
    lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    rmse = float(np.sqrt(np.mean((p - y) ** 2)))
    ax.set(xlabel="true", ylabel="predicted")
    ax.set_title(f"{names[t]}\nRMSE {rmse:.3f}, n = {y.size}", fontsize=9)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_roc(targets, scores, names: Sequence[str], path: str, title: str = "") -> None:
  n = min(len(names), MAX_PANELS)
  fig, axes = _grid(n)
  for t, ax in zip(range(n), axes):
    keep = ~np.isnan(targets[:, t])
    y, s = targets[keep, t], scores[keep, t]
    if 0 < y.sum() < y.size:
      fpr, tpr = ranking.roc_curve(y, s)
      ax.plot(fpr, tpr, label=f"AUC {ranking.roc_auc(y, s):.3f}")
      ax.legend(loc="lower right")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate")
    ax.set_title(names[t], fontsize=9)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_predictions(path: str, smiles: Sequence[str], rows, names: Sequence[str],
                      targets, predictions) -> None:
  frame = pd.DataFrame({"row": rows, "smiles": smiles})
  for t, name in enumerate(names):
    if targets is not None:
      frame[name] = targets[:, t]
    frame[f"{name}_pred"] = predictions[:, t]
  frame.to_csv(path, index=False)


def write_invalid(path: str, invalid: Sequence[tuple[int, str]], lines) -> None:
  """`line`: the input file's line (header = line 1); `row`: the 0-based data row."""
  rows = [r for r, _ in invalid]
  pd.DataFrame({"line": np.asarray(lines, np.int64)[rows], "row": rows,
                "smiles": [s for _, s in invalid]}).to_csv(path, index=False)


def write_split(path: str, split: dict[str, np.ndarray], rows, smiles: Sequence[str]) -> None:
  """`split.csv`: the data row, SMILES and split of every molecule a run used (molecules
  outside `task.subset` are left out), so that another tool can train on the same split
  (e.g. Chemprop's `--splits-column split`)."""
  ids = np.concatenate([np.asarray(v, np.int64) for v in split.values()])
  names = np.concatenate([[k] * len(v) for k, v in split.items()])
  order = np.argsort(ids, kind="stable")
  pd.DataFrame({"row": np.asarray(rows)[ids[order]], "smiles": [smiles[i] for i in ids[order]],
                "split": names[order]}).to_csv(path, index=False)


def write_label_counts(path: str, missing: dict[str, int], molecules: int) -> None:
  """Per task: molecules (valid SMILES) with a label and without one."""
  pd.DataFrame({"task": list(missing), "labelled": [molecules - m for m in missing.values()],
                "missing": list(missing.values())}).to_csv(path, index=False)


def figure_path(workdir: str, name: str) -> str:
  os.makedirs(workdir, exist_ok=True)
  return os.path.join(workdir, name)
