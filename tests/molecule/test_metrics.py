"""Molecule metrics against scikit-learn, with missing labels."""

import numpy as np
import pytest
from sklearn import metrics as skm

from medjax.molecule import metrics


def test_regression_matches_sklearn_per_task_and_mean():
  rng = np.random.default_rng(0)
  y = rng.normal(size=(40, 2))
  p = y + rng.normal(scale=0.5, size=y.shape)
  y[3, 1] = np.nan
  out = metrics.regression(y, p, ["a", "b"])
  keep = ~np.isnan(y[:, 1])
  rmse_b = np.sqrt(skm.mean_squared_error(y[keep, 1], p[keep, 1]))
  assert out["rmse/b"] == pytest.approx(rmse_b)
  assert out["mae/a"] == pytest.approx(skm.mean_absolute_error(y[:, 0], p[:, 0]))
  assert out["r2/b"] == pytest.approx(skm.r2_score(y[keep, 1], p[keep, 1]))
  assert out["rmse"] == pytest.approx((out["rmse/a"] + rmse_b) / 2)


def test_binary_averages_only_tasks_with_both_classes():
  rng = np.random.default_rng(1)
  y = rng.integers(0, 2, (60, 3)).astype(float)
  y[:, 2] = 0.0  # one class only: no AUC
  y[rng.random((60, 3)) < 0.2] = np.nan  # missing labels
  s = rng.random((60, 3)) + 0.3 * np.nan_to_num(y)
  out = metrics.binary(y, s, ["t0", "t1", "t2"])
  aucs = []
  for t in (0, 1):
    keep = ~np.isnan(y[:, t])
    aucs.append(skm.roc_auc_score(y[keep, t], s[keep, t]))
    assert out[f"roc_auc/t{t}"] == pytest.approx(aucs[-1])
    assert out[f"pr_auc/t{t}"] == pytest.approx(
        skm.average_precision_score(y[keep, t], s[keep, t]))
  assert np.isnan(out["roc_auc/t2"])
  assert out["roc_auc"] == pytest.approx(np.mean(aucs))
  assert out["tasks_scored"] == 2


def test_multiclass_matches_sklearn():
  rng = np.random.default_rng(2)
  y = rng.integers(0, 3, (50, 1)).astype(float)
  logits = rng.normal(size=(50, 1, 3)) + np.eye(3)[y[:, 0].astype(int)][:, None]
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  out = metrics.multiclass(y, probs, ["c"])
  assert out["accuracy"] == pytest.approx(skm.accuracy_score(y[:, 0], probs[:, 0].argmax(-1)))
  assert out["cross_entropy"] == pytest.approx(skm.log_loss(y[:, 0], probs[:, 0]))
  assert out["roc_auc"] == pytest.approx(
      skm.roc_auc_score(y[:, 0], probs[:, 0], multi_class="ovr", average="macro"))


def test_summarize_gives_mean_and_sample_sd():
  out = metrics.summarize([{"test/rmse": 1.0}, {"test/rmse": 2.0}, {"test/rmse": 4.0}])
  assert out["test/rmse"] == pytest.approx((7 / 3, np.std([1, 2, 4], ddof=1)))
