"""Figures: calibration plot and per-patient explanations (attributions, attention)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medjax.ehr.evaluation import calibration_bins  # noqa: E402
from medjax.metrics import ranking  # noqa: E402


def calibration_plot(labels, probabilities, path: str, title: str = "") -> None:
  """Reliability diagram (10 equal-width bins), ROC curve and prediction histogram."""
  fig, axes = plt.subplots(1, 3, figsize=(13, 4))
  mean_p, rate, count = calibration_bins(labels, probabilities)
  ax = axes[0]
  ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
  ax.plot(mean_p, rate, "o-", label="model")
  for x, y, n in zip(mean_p, rate, count):
    ax.annotate(str(n), (x, y), fontsize=7, xytext=(3, -8), textcoords="offset points")
  ax.set(xlabel="mean predicted risk", ylabel="observed mortality", title="calibration",
         xlim=(0, 1), ylim=(0, 1))
  ax.legend()
  fpr, tpr = ranking.roc_curve(labels, probabilities)
  axes[1].plot(fpr, tpr)
  axes[1].plot([0, 1], [0, 1], "k--", lw=1)
  axes[1].set(xlabel="false positive rate", ylabel="true positive rate",
              title=f"ROC (AUROC {ranking.roc_auc(labels, probabilities):.3f})")
  labels = np.asarray(labels)
  axes[2].hist([probabilities[labels == 0], probabilities[labels == 1]], bins=20,
               range=(0, 1), label=["survived", "died"], stacked=True)
  axes[2].set(xlabel="predicted risk", ylabel="stays", title="predictions")
  axes[2].legend()
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def attribution_plot(attribution: np.ndarray, mask: np.ndarray, variables, path: str,
                     title: str = "", bin_hours: float = 1.0, top: int = 12) -> None:
  """Gradient x input per (hour, variable) as a heatmap, and summed per variable."""
  total = attribution.sum(0)
  order = np.argsort(-np.abs(total))[:top]
  top = len(order)
  fig, axes = plt.subplots(1, 2, figsize=(13, 0.35 * top + 2),
                           gridspec_kw={"width_ratios": [3, 1]})
  lim = max(np.abs(attribution[:, order]).max(), 1e-9)
  im = axes[0].imshow(attribution[:, order].T, aspect="auto", cmap="RdBu_r", vmin=-lim,
                      vmax=lim, extent=(0, attribution.shape[0] * bin_hours, top - 0.5, -0.5))
  obs_t, obs_v = np.nonzero(mask[:, order])
  axes[0].scatter((obs_t + 0.5) * bin_hours, obs_v, s=3, c="k", marker=".")
  axes[0].set(yticks=range(len(order)), yticklabels=[variables[i] for i in order],
              xlabel="hours since ICU admission", title="gradient x input (dots: observed)")
  fig.colorbar(im, ax=axes[0], label="contribution to logit")
  axes[1].barh(range(len(order)), total[order], color=np.where(total[order] > 0, "C3", "C0"))
  axes[1].set(yticks=range(len(order)), yticklabels=[], ylim=(len(order) - 0.5, -0.5),
              xlabel="sum over time")
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def attention_plot(times, attention, mask, variables, path: str, title: str = "") -> None:
  """Attention-pooling weight per observation time, above the observed variables."""
  fig, axes = plt.subplots(2, 1, figsize=(12, 8), sharex=True,
                           gridspec_kw={"height_ratios": [1, 2]})
  axes[0].stem(times, attention, basefmt=" ")
  axes[0].set(ylabel="attention weight", title="Transformer attention per time step")
  obs_t, obs_v = np.nonzero(mask)
  axes[1].scatter(np.asarray(times)[obs_t], obs_v, s=6, marker="|")
  axes[1].set(yticks=range(len(variables)), yticklabels=variables,
              xlabel="hours since ICU admission", ylabel="observed")
  axes[1].tick_params(axis="y", labelsize=6)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def retain_plot(visit_attention, contributions, code_names, visit_times, path: str,
                title: str = "", top: int = 15) -> None:
  """RETAIN: alpha per visit, and the codes with the largest contributions to the logit."""
  fig, axes = plt.subplots(1, 2, figsize=(14, 0.35 * top + 2),
                           gridspec_kw={"width_ratios": [1, 2]})
  labels = [f"visit {j} (day {t:.0f})" for j, t in enumerate(visit_times)]
  axes[0].barh(range(len(labels)), visit_attention)
  axes[0].set(yticks=range(len(labels)), yticklabels=labels, title="visit attention (alpha)")
  axes[0].invert_yaxis()
  flat = [(contributions[j][k], f"v{j} {code_names[j][k]}")
          for j in range(len(code_names)) for k in range(len(code_names[j]))]
  flat = sorted(flat, key=lambda x: -abs(x[0]))[:top]
  values = [f[0] for f in flat]
  axes[1].barh(range(len(flat)), values, color=["C3" if v > 0 else "C0" for v in values])
  axes[1].set(yticks=range(len(flat)), yticklabels=[f[1][:60] for f in flat],
              title="code contributions to the logit", xlabel="contribution")
  axes[1].tick_params(axis="y", labelsize=7)
  axes[1].invert_yaxis()
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
