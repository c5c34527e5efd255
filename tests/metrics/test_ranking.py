import numpy as np
import pytest
from sklearn import metrics as skm

from medjax.metrics import ranking


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, True)])
def test_matches_sklearn(seed, ties):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, 500)
  scores = rng.normal(size=500) + labels
  if ties:
    scores = np.round(scores, 1)
  weights = rng.integers(0, 3, 500).astype(float)
  assert ranking.roc_auc(labels, scores) == pytest.approx(skm.roc_auc_score(labels, scores))
  assert ranking.roc_auc(labels, scores, weights) == pytest.approx(
      skm.roc_auc_score(labels, scores, sample_weight=weights))
  assert ranking.average_precision(labels, scores, weights) == pytest.approx(
      skm.average_precision_score(labels, scores, sample_weight=weights))
  probs = 1 / (1 + np.exp(-scores))
  assert ranking.brier_score(labels, probs) == pytest.approx(skm.brier_score_loss(labels, probs))


def test_hand_cases():
  assert ranking.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
  assert ranking.roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
  assert np.isnan(ranking.roc_auc([1, 1], [0.2, 0.3]))
  assert np.isnan(ranking.average_precision([0, 0], [0.2, 0.3]))
  # Zero weight drops the only negative: AUC undefined.
  assert np.isnan(ranking.roc_auc([0, 1, 1], [0.9, 0.2, 0.3], weights=[0, 1, 1]))
