"""Temperature scaling against scikit-learn references; the evaluator's calibrated metrics."""

import numpy as np
import pytest
from sklearn import calibration as skc
from sklearn import linear_model
from sklearn import metrics as skm

from medjax.ehr import calibration, evaluation
from medjax.ehr.examples import Examples


def _data(seed, n=4000, scale=3.0, shift=0.0):
  """Labels drawn from sigmoid(z); the model's logits are scale * z + shift."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=n) * 1.5 - 1.5
  labels = (rng.uniform(size=n) < 1 / (1 + np.exp(-z))).astype(int)
  return labels, scale * z + shift


def test_temperature_is_sklearn_logistic_regression_without_intercept():
  labels, logits = _data(0, n=1500)
  temperature, nll = calibration.fit_temperature(labels, logits)
  ref = linear_model.LogisticRegression(fit_intercept=False, C=1e12, tol=1e-10,
                                        max_iter=1000).fit(logits[:, None], labels)
  assert temperature == pytest.approx(1 / ref.coef_[0, 0], rel=1e-4)
  assert nll == pytest.approx(skm.log_loss(labels, ref.predict_proba(logits[:, None])[:, 1]),
                              rel=1e-6)


def test_overconfident_logits_get_their_scale_back():
  labels, logits = _data(1, n=20000, scale=3.0)
  fitted = calibration.fit(labels, logits)
  assert fitted.temperature == pytest.approx(3.0, rel=0.06)
  assert fitted.nll_after < fitted.nll_before


def test_weighted_loss_shift_is_undone_ranking_kept():
  weight = 6.0  # weighted BCE's optimum: the true logit + log(weight)
  labels, logits = _data(2, scale=1.0, shift=np.log(weight))
  offset = calibration.prior_offset("weighted", weight)
  fitted = calibration.fit(labels, logits, offsets=(0.0, offset))
  assert fitted.offset == pytest.approx(np.log(weight))
  assert fitted.temperature == pytest.approx(1.0, abs=0.08)
  raw, calibrated = 1 / (1 + np.exp(-logits)), fitted.probabilities(logits)
  assert skm.roc_auc_score(labels, calibrated) == skm.roc_auc_score(labels, raw)
  assert skm.brier_score_loss(labels, calibrated) < skm.brier_score_loss(labels, raw) - 0.02
  assert skm.log_loss(labels, calibrated) == pytest.approx(fitted.nll_after, rel=1e-6)
  assert fitted.nll_after <= skm.log_loss(labels, raw)


def test_nll_never_increases_even_for_useless_logits():
  rng = np.random.default_rng(3)
  labels = (rng.uniform(size=200) < 0.2).astype(int)
  logits = -2.0 * (labels - 0.5) + rng.normal(size=200)  # anti-correlated
  fitted = calibration.fit(labels, logits, offsets=(0.0, 1.0))
  assert fitted.nll_after <= fitted.nll_before
  assert fitted.nll_before == pytest.approx(skm.log_loss(labels, 1 / (1 + np.exp(-logits))))


def test_one_outcome_only_keeps_the_identity():
  fitted = calibration.fit(np.zeros(50), np.linspace(-3, -1, 50), offsets=(0.0, 1.0))
  assert (fitted.temperature, fitted.offset, fitted.fitted_on) == (1.0, 0.0, "")
  assert calibration.fit([], []) == calibration.Calibration()


def test_ece_matches_sklearn_bins():
  labels, logits = _data(4, n=3000)
  probs = 1 / (1 + np.exp(-logits / 2))
  rate, mean_p = skc.calibration_curve(labels, probs, n_bins=10, strategy="uniform")
  counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], probs), minlength=10)
  counts = counts[counts > 0]
  expected = np.sum(counts * np.abs(mean_p - rate)) / len(probs)
  assert evaluation.expected_calibration_error(labels, probs) == pytest.approx(expected)


def test_validation_fit_applied_to_test(tmp_path):
  labels, logits = _data(5, n=600, scale=2.5, shift=1.0)
  examples = Examples(np.arange(600), arrays={
      "x": logits.astype(np.float32), "label": labels.astype(np.float32),
      "_mask": np.ones(600, np.float32)})
  calibrator = calibration.Calibrator((0.0, 1.0))
  val = evaluation.MortalityEvaluator("val", examples, np.arange(300), 64, 1, calibrator,
                                      fit_calibration=True)
  test = evaluation.MortalityEvaluator("test", examples, np.arange(300, 600), 64, 1,
                                       calibrator)
  predict = lambda batch: {"logits": batch["x"]}  # noqa: E731
  val_metrics = dict(val.run(predict))
  fitted = calibrator.current
  assert fitted.fitted_on == "val" and fitted.count == 300
  assert val_metrics["temperature"] == fitted.temperature
  assert val_metrics["log_loss"] <= val_metrics["log_loss_uncalibrated"]
  test_metrics = dict(test.run(predict))
  assert calibrator.current is fitted  # the test split is not refitted
  y, z = labels[300:], logits[300:].astype(np.float32).astype(np.float64)
  calibrated = 1 / (1 + np.exp(-(z - fitted.offset) / fitted.temperature))
  assert test_metrics["brier"] == pytest.approx(skm.brier_score_loss(y, calibrated))
  assert test_metrics["brier_uncalibrated"] == pytest.approx(
      skm.brier_score_loss(y, 1 / (1 + np.exp(-z))))
  assert test_metrics["auroc"] == pytest.approx(skm.roc_auc_score(y, z))
  calibration.save(fitted, str(tmp_path))
  assert calibration.load(str(tmp_path)) == fitted
  assert calibration.load(str(tmp_path / "none")) is None
