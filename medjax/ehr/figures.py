"""Figures: the calibration plot (per-patient explanations: medjax.explain.figures)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medjax.ehr.evaluation import calibration_bins  # noqa: E402
from medjax.ehr.evaluation import expected_calibration_error  # noqa: E402
from medjax.metrics import ranking  # noqa: E402


def calibration_plot(labels, probabilities, path: str, title: str = "",
                     uncalibrated=None) -> None:
  """Reliability diagram (10 equal-width bins; `uncalibrated` risks dashed, for
  comparison), ROC curve and prediction histogram."""
  fig, axes = plt.subplots(1, 3, figsize=(13, 4))
  ax = axes[0]
  ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
  if uncalibrated is not None:
    raw_p, raw_rate, _ = calibration_bins(labels, uncalibrated)
    ax.plot(raw_p, raw_rate, "s--", color="0.6", ms=4, label=(
        f"uncalibrated (ECE {expected_calibration_error(labels, uncalibrated):.3f}, "
        f"Brier {ranking.brier_score(labels, uncalibrated):.3f})"))
  mean_p, rate, count = calibration_bins(labels, probabilities)
  name = "model" if uncalibrated is None else "calibrated"
  ax.plot(mean_p, rate, "o-", label=(
      f"{name} (ECE {expected_calibration_error(labels, probabilities):.3f}, "
      f"Brier {ranking.brier_score(labels, probabilities):.3f})"))
  for x, y, n in zip(mean_p, rate, count):
    ax.annotate(str(n), (x, y), fontsize=7, xytext=(3, -8), textcoords="offset points")
  ax.set(xlabel="mean predicted risk", ylabel="observed mortality", title="reliability",
         xlim=(0, 1), ylim=(0, 1))
  ax.legend(fontsize=7)
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
