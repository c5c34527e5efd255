"""Pooled AUROC over sites from per-class score histograms (no prediction leaves a site).

Each site sends, for its positives and its negatives, the count of probabilities in
each of `BINS` equal-width bins of [0, 1]. Summed over sites, they give the pooled
AUROC up to ties within a bin (counted half), i.e. exact when no two scores of
opposite classes share a bin.
"""

from __future__ import annotations

import numpy as np

BINS = 2000


def score_histograms(labels, probabilities, bins: int = BINS) -> tuple[list, list]:
  """(positive counts, negative counts) per probability bin, as int lists."""
  p = np.clip(np.asarray(probabilities, np.float64), 0.0, 1.0)
  which = np.minimum((p * bins).astype(np.int64), bins - 1)
  y = np.asarray(labels) > 0.5
  pos = np.bincount(which[y], minlength=bins)
  neg = np.bincount(which[~y], minlength=bins)
  return pos.tolist(), neg.tolist()


def binned_auroc(pos, neg) -> float:
  """P(score of a positive > score of a negative) + half the ties, from histograms."""
  pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
  if pos.sum() == 0 or neg.sum() == 0:
    return float("nan")
  below = np.cumsum(neg) - neg  # negatives in lower bins
  return float(np.sum(pos * (below + 0.5 * neg)) / (pos.sum() * neg.sum()))
