"""Mortality metrics against scikit-learn; each stay counted once despite padding."""

import numpy as np
import pytest
from sklearn import calibration as skc
from sklearn import metrics as skm

from medjax.ehr import evaluation
from medjax.ehr.examples import Examples


@pytest.mark.parametrize("seed", [0, 1])
def test_metrics_match_sklearn(seed):
  rng = np.random.default_rng(seed)
  labels = (rng.uniform(size=300) < 0.15).astype(int)
  probs = 1 / (1 + np.exp(-(rng.normal(size=300) + 1.5 * labels - 1.5)))
  got = evaluation.mortality_metrics(labels, probs)
  assert got["auroc"] == pytest.approx(skm.roc_auc_score(labels, probs))
  assert got["auprc"] == pytest.approx(skm.average_precision_score(labels, probs))
  assert got["brier"] == pytest.approx(skm.brier_score_loss(labels, probs))
  assert got["log_loss"] == pytest.approx(skm.log_loss(labels, probs), rel=1e-6)
  rate, mean_p = skc.calibration_curve(labels, probs, n_bins=10, strategy="uniform")
  my_mean_p, my_rate, _ = evaluation.calibration_bins(labels, probs, 10)
  np.testing.assert_allclose(my_mean_p, mean_p)
  np.testing.assert_allclose(my_rate, rate)


def test_ece_hand_case():
  # Bin [0.1, 0.2): predicted 0.1, 0.1, observed 1/2 -> gap 0.4 over 2 of 4 stays;
  # bin [0.9, 1]: predicted 0.9, 0.9, observed 1 -> gap 0.1 over 2 of 4.
  ece = evaluation.expected_calibration_error([0, 1, 1, 1], [0.1, 0.1, 0.9, 0.9])
  assert ece == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)


def test_evaluator_counts_each_stay_once():
  n = 11
  labels = np.arange(n) % 3 == 0
  scores = np.linspace(-2, 2, n)
  examples = Examples(np.arange(n), arrays={
      "x": scores.astype(np.float32), "label": labels.astype(np.float32),
      "_mask": np.ones(n, np.float32)})
  seen = []

  def predict(batch):
    assert len(batch["x"]) == 4  # full-size batches, the last one padded
    seen.append(int(batch["_mask"].sum()))
    return {"logits": batch["x"]}

  indices = np.arange(n)[::-1]
  evaluator = evaluation.MortalityEvaluator("test", examples, indices, batch_size=4)
  metrics = dict(evaluator.run(predict))
  assert seen == [4, 4, 3]
  assert metrics["count"] == n
  assert metrics["auroc"] == pytest.approx(skm.roc_auc_score(labels, scores))
  got_labels, got_probs = evaluator.predict(predict)
  np.testing.assert_array_equal(got_labels, labels[indices])
  np.testing.assert_allclose(got_probs, 1 / (1 + np.exp(-scores[indices])), rtol=1e-6)
