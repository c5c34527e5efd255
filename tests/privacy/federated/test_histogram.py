"""The pooled AUROC from per-site score histograms, against the exact AUROC."""

import numpy as np
from flwr.app import MetricRecord, RecordDict

from medjax.metrics import ranking
from medjax.privacy.federated import histogram, server


def test_binned_auroc_is_exact_without_ties_within_bins():
  rng = np.random.default_rng(0)
  bins = rng.permutation(histogram.BINS)[:300]
  scores = (bins + 0.5) / histogram.BINS  # one score per bin: no ties
  labels = rng.uniform(size=300) < 0.3
  pos, neg = histogram.score_histograms(labels, scores)
  assert sum(pos) == labels.sum() and sum(neg) == (~labels).sum()
  np.testing.assert_allclose(histogram.binned_auroc(pos, neg),
                             ranking.roc_auc(labels, scores), rtol=1e-12)


def test_pooled_auroc_over_sites_matches_the_pooled_exact_auroc():
  rng = np.random.default_rng(1)
  records, all_labels, all_scores = [], [], []
  for n in (40, 90, 25):
    labels = (rng.uniform(size=n) < 0.25).astype(float)
    scores = np.clip(0.3 * labels + rng.uniform(size=n) * 0.7, 0, 1)
    pos, neg = histogram.score_histograms(labels, scores)
    records.append(RecordDict({"metrics": MetricRecord({
        "num-examples": n, "auroc": ranking.roc_auc(labels, scores),
        "hist-pos": pos, "hist-neg": neg})}))
    all_labels.append(labels), all_scores.append(scores)
  out = server.aggregate_evaluation(records, "num-examples")
  exact = ranking.roc_auc(np.concatenate(all_labels), np.concatenate(all_scores))
  assert abs(out["auroc-pooled"] - exact) < 2e-3  # ties within a 1/2000 bin only
  assert out["num-examples"] == 155
