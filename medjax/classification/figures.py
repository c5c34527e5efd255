"""Classification figures as PNG: ROC curves and reliability diagrams (calibration)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from medjax.classification import metrics  # noqa: E402
from medjax.metrics import ranking  # noqa: E402


def roc_figure(y_true, probs, path: str, kind: str = "binary", class_names=None,
               title: str = "", mask=None) -> None:
  """One ROC curve per class (one-vs-rest for multiclass), AUC in the legend; `mask`
  as in `metrics.as_matrices`."""
  y, p, w = metrics.as_matrices(y_true, probs, kind, mask)
  names = metrics.resolve_class_names(class_names, kind, p.shape[1])
  fig, ax = plt.subplots(figsize=(5.5, 5))
  ax.plot([0, 1], [0, 1], "k--", lw=1, label="chance")
  for k, name in enumerate(names):
    labels, scores = y[w[:, k], k], p[w[:, k], k]
    if 0 < labels.sum() < len(labels):  # a curve needs both classes
      fpr, tpr = ranking.roc_curve(labels, scores)
      ax.plot(fpr, tpr, lw=1.5, label=f"{name} (AUC {ranking.roc_auc(labels, scores):.3f})")
  ax.set(xlabel="1 - specificity (false positive rate)",
         ylabel="sensitivity (true positive rate)", xlim=(0, 1), ylim=(0, 1.01),
         title=title or "ROC")
  ax.legend(loc="lower right", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _reliability_series(y_true, probs, kind: str, class_names, mask):
  """[(label, hits, confidences)]: top-label for multiclass, else per class."""
  y, p, w = metrics.as_matrices(y_true, probs, kind, mask)
  if kind == "multiclass":
    return [("top label", p.argmax(1) == y.argmax(1), p.max(1))]
  names = metrics.resolve_class_names(class_names, kind, p.shape[1])
  return [(name, y[w[:, k], k], p[w[:, k], k]) for k, name in enumerate(names)]


def reliability_figure(y_true, probs, path: str, kind: str = "binary", class_names=None,
                       n_bins: int = metrics.N_BINS, title: str = "", mask=None) -> None:
  """Observed frequency against mean predicted probability per equal-width bin
  (ECE in the legend), over a histogram of the predictions."""
  series = _reliability_series(y_true, probs, kind, class_names, mask)
  fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True,
                                 gridspec_kw={"height_ratios": [3, 1]})
  ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
  edges = np.linspace(0, 1, n_bins + 1)
  for name, hits, confidence in series:
    _, count, positives, summed = metrics.calibration_bins(hits, confidence, n_bins)
    used = count > 0
    ece = metrics.expected_calibration_error(hits, confidence, n_bins)
    ax.plot(summed[used] / count[used], positives[used] / count[used], "o-", ms=4,
            label=f"{name} (ECE {ece:.3f})")
    hist.hist(confidence, bins=edges, histtype="step", lw=1.2)
  x_label = "confidence (top-label probability)" if kind == "multiclass" else \
      "predicted probability"
  ax.set(ylabel="observed frequency", xlim=(0, 1), ylim=(-0.02, 1.02),
         title=title or "calibration")
  ax.legend(loc="upper left", fontsize=8)
  hist.set(xlabel=x_label, ylabel="cases")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
