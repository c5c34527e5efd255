import numpy as np
import pytest
from sklearn import metrics as skm

from medjax.classification import metrics
from medjax.engine.errors import InputError


def _binary(n=300, seed=0):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, n)
  prob = 1 / (1 + np.exp(-(1.5 * y - 0.75 + rng.normal(size=n))))
  return y, prob


def _multiclass(n=300, k=4, seed=1):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, k, n)
  logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  return y, probs


def _multilabel(n=300, k=3, seed=2):
  rng = np.random.default_rng(seed)
  y = (rng.random((n, k)) < [0.5, 0.3, 0.15]).astype(int)
  probs = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(size=(n, k)))))
  return y, probs


def test_binary_metrics_match_sklearn():
  y, prob = _binary()
  out = metrics.binary_metrics(y, prob, threshold=0.4)
  predicted = (prob >= 0.4).astype(int)
  tn, fp, fn, tp = skm.confusion_matrix(y, predicted).ravel()
  assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(y, prob))
  assert out["auprc"] == pytest.approx(skm.average_precision_score(y, prob))
  assert out["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
  assert out["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, predicted))
  assert out["sensitivity"] == pytest.approx(tp / (tp + fn))
  assert out["specificity"] == pytest.approx(tn / (tn + fp))
  assert (out["n_positive"], out["n_negative"]) == (y.sum(), (1 - y).sum())


def test_ece_hand_computed():
  # Bins of width 1/15: 0.05 -> bin 0; 0.3 and 0.31 -> bin 4; 0.9 -> bin 13.
  # Each bin adds |B|/N * |mean y - mean p| = |sum y - sum p| / N.
  y = np.array([0, 1, 0, 1])
  prob = np.array([0.05, 0.3, 0.31, 0.9])
  expected = (abs(0 - 0.05) + abs(1 - 0.61) + abs(1 - 0.9)) / 4
  assert metrics.expected_calibration_error(y, prob) == pytest.approx(expected)
  # A bin edge belongs to the bin below it: 1/15 and 0 share bin 0.
  assert metrics.expected_calibration_error([1, 0], [1 / 15, 0.0]) == pytest.approx(
      abs(1 - 1 / 15) / 2)
  assert metrics.expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0


def test_top_label_ece_for_multiclass():
  probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]])
  y = np.array([0, 2, 2, 2])
  report = metrics.classification_report(y, probs, "multiclass", n_bootstrap=0)
  # Confidences 0.7 (right), 0.5 (wrong) and 0.6, 0.4 (right): bins 10, 7, 8, 5.
  expected = (abs(1 - 0.7) + abs(0 - 0.5) + abs(1 - 0.6) + abs(1 - 0.4)) / 4
  assert report["summary"]["ece"] == pytest.approx(expected)
  assert report["summary"]["accuracy"] == pytest.approx(0.75)


def test_multiclass_report_matches_sklearn():
  y, probs = _multiclass()
  report = metrics.classification_report(y, probs, "multiclass", n_bootstrap=0,
                                         class_names=list("abcd"))
  summary, decided = report["summary"], probs.argmax(1)
  assert summary["roc_auc_macro"] == pytest.approx(
      skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
  assert summary["auprc_macro"] == pytest.approx(
      skm.average_precision_score(np.eye(4)[y], probs, average="macro"))
  assert summary["accuracy"] == pytest.approx(skm.accuracy_score(y, decided))
  assert summary["balanced_accuracy"] == pytest.approx(
      skm.balanced_accuracy_score(y, decided))
  recall = skm.recall_score(y, decided, average=None)
  for k, name in enumerate("abcd"):
    row = report["per_class"][name]
    assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(y == k, probs[:, k]))
    assert row["sensitivity"] == pytest.approx(recall[k])
    assert row["specificity"] == pytest.approx(np.mean(decided[y != k] != k))
    assert row["n_positive"] == (y == k).sum() and row["threshold"] is None


def test_multilabel_report_matches_sklearn():
  y, probs = _multilabel()
  thresholds = [0.5, 0.4, 0.6]
  report = metrics.classification_report(y, probs, "multilabel", thresholds=thresholds,
                                         n_bootstrap=0)
  predicted = (probs >= thresholds).astype(int)
  summary = report["summary"]
  assert summary["roc_auc_macro"] == pytest.approx(skm.roc_auc_score(y, probs))
  assert summary["auprc_macro"] == pytest.approx(skm.average_precision_score(y, probs))
  assert summary["subset_accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
  assert summary["accuracy"] == pytest.approx(np.mean(y == predicted))
  assert summary["balanced_accuracy"] == pytest.approx(np.mean(
      [skm.balanced_accuracy_score(y[:, k], predicted[:, k]) for k in range(3)]))
  for k in range(3):
    row = report["per_class"][f"class_{k}"]
    assert row["threshold"] == thresholds[k]
    assert row["sensitivity"] == pytest.approx(skm.recall_score(y[:, k], predicted[:, k]))


def test_choose_threshold_maximises_youden_and_f1():
  y, prob = _binary(200, seed=3)
  grid = np.unique(prob)

  def youden(t):
    out = metrics.binary_metrics(y, prob, t)
    return out["sensitivity"] + out["specificity"] - 1
  best = metrics.choose_threshold(y, prob)
  assert best in grid
  assert youden(best) == pytest.approx(max(youden(t) for t in grid))
  def f1(t):
    tp, called = np.sum(y * (prob >= t)), np.sum(prob >= t)
    return 2 * tp / (called + y.sum())
  best_f1 = metrics.choose_threshold(y, prob, rule="f1")
  assert skm.f1_score(y, prob >= best_f1) == pytest.approx(max(f1(t) for t in grid))
  # Perfectly separated: the lowest positive score.
  assert metrics.choose_threshold([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.8]) == 0.6
  with pytest.raises(InputError, match="youden"):
    metrics.choose_threshold(y, prob, rule="max")
  assert metrics.choose_thresholds(*_multiclass(), kind="multiclass") is None
  ml_y, ml_p = _multilabel()
  ml_y[:, 2] = 0  # a finding absent from validation keeps 0.5
  chosen = metrics.choose_thresholds(ml_y, ml_p, kind="multilabel")
  assert chosen[:2] == [metrics.choose_threshold(ml_y[:, k], ml_p[:, k]) for k in (0, 1)]
  assert chosen[2] == 0.5


def test_bootstrap_interval_contains_estimate_and_narrows():
  widths = []
  for n in (80, 800):
    y, prob = _binary(n, seed=4)
    report = metrics.classification_report(y, prob, n_bootstrap=200, seed=0,
                                           class_names=["normal", "pneumonia"])
    assert report["bootstrap"]["n_used"] == 200
    for metric, (low, high) in report["ci"]["summary"].items():
      assert low <= report["summary"][metric] <= high, metric
    low, high = report["ci"]["per_class"]["pneumonia"]["roc_auc"]
    assert report["per_class"]["pneumonia"]["roc_auc"] == report["summary"]["roc_auc_macro"]
    widths.append(high - low)
  assert widths[1] < 0.6 * widths[0]  # ~ 1/sqrt(10) in theory


def test_bootstrap_is_seeded_and_skips_single_class_resamples():
  y = np.r_[np.ones(2, int), np.zeros(10, int)]  # 2 positives in 12: often none drawn
  prob = np.linspace(0.1, 0.9, 12)
  a = metrics.classification_report(y, prob, n_bootstrap=100, seed=5)
  b = metrics.classification_report(y, prob, n_bootstrap=100, seed=5)
  assert a["ci"] == b["ci"]
  # P(no positive among 12 draws) = (10/12)^12 ~ 0.11.
  assert 70 <= a["bootstrap"]["n_used"] < 100
  flat = metrics.flatten(a)
  assert flat["roc_auc_macro_ci_low"] == a["ci"]["summary"]["roc_auc_macro"][0]
  assert flat["ece/positive"] == a["per_class"]["positive"]["ece"]


def test_bad_arguments():
  y, probs = _multiclass()
  with pytest.raises(InputError, match="kind"):
    metrics.classification_report(y, probs, "ordinal")
  with pytest.raises(ValueError, match="argmax"):
    metrics.classification_report(y, probs, "multiclass", thresholds=0.5)
  with pytest.raises(ValueError, match="positive and negative"):
    metrics.choose_threshold([1, 1], [0.2, 0.3])


def test_missing_labels_are_left_out():
  y, probs = _multilabel(seed=6)
  known = np.random.default_rng(7).random(y.shape) < 0.8
  corrupted = np.where(known, y, 1 - y)  # a missing label's value must not matter
  report = metrics.classification_report(corrupted, probs, "multilabel", n_bootstrap=20,
                                         mask=known)
  for k in range(3):
    row = report["per_class"][f"class_{k}"]
    assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(y[known[:, k], k],
                                                             probs[known[:, k], k]))
    assert (row["n_known"], row["n_positive"]) == (known[:, k].sum(), y[known[:, k], k].sum())
  right = ((probs >= 0.5) == y) | ~known
  assert (~known).all(1).sum() > 0  # cases with no label known do not count
  assert report["summary"]["subset_accuracy"] == pytest.approx(
      np.all(right, 1)[known.any(1)].mean())
  assert metrics.choose_thresholds(corrupted, probs, "multilabel", mask=known) == [
      metrics.choose_threshold(y[known[:, k], k], probs[known[:, k], k]) for k in range(3)]
  # A case mask (N,) drops cases of any kind.
  yb, pb = _binary()
  keep = np.arange(len(yb)) % 3 > 0
  masked = metrics.classification_report(yb, pb, n_bootstrap=0, mask=keep)
  assert masked["summary"] == metrics.classification_report(
      yb[keep], pb[keep], n_bootstrap=0)["summary"]
