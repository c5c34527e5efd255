import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn import metrics as skm

from medjax.segmentation import metrics


def _random_batch(seed, b=4, spatial=(12, 10), k=2):
  rng = np.random.default_rng(seed)
  label = rng.integers(0, k, (b, *spatial))
  # Predictions agree with the labels ~70% of the time.
  pred = np.where(rng.random(label.shape) < 0.7, label, rng.integers(0, k, label.shape))
  valid = rng.random(label.shape) > 0.2
  return pred, label, valid


def test_binary_scores_match_sklearn():
  pred, label, valid = _random_batch(0)
  got = metrics.binary_scores(pred, label, valid)
  for i in range(pred.shape[0]):
    y, p = label[i][valid[i]], pred[i][valid[i]]
    assert got["dice"][i] == pytest.approx(skm.f1_score(y, p))
    assert got["iou"][i] == pytest.approx(skm.jaccard_score(y, p))
    assert got["sensitivity"][i] == pytest.approx(skm.recall_score(y, p))
    assert got["specificity"][i] == pytest.approx(skm.recall_score(y, p, pos_label=0))
    assert got["accuracy"][i] == pytest.approx(skm.accuracy_score(y, p))


def test_per_class_scores_match_sklearn():
  pred, label, valid = _random_batch(1, k=4)
  got = metrics.per_class_scores(pred, label, 4, valid)
  assert got["dice"].shape == (4, 4)
  for i in range(pred.shape[0]):
    y, p = label[i][valid[i]], pred[i][valid[i]]
    np.testing.assert_allclose(got["dice"][i], skm.f1_score(y, p, average=None,
                                                            labels=range(4)))
    np.testing.assert_allclose(got["iou"][i], skm.jaccard_score(y, p, average=None,
                                                                labels=range(4)))


def test_hand_cases_and_empty_masks():
  pred = np.array([[1, 1, 0, 0, 0]])
  label = np.array([[1, 0, 0, 0, 1]])
  got = metrics.binary_scores(pred, label)
  assert got["dice"][0] == pytest.approx(2 / 4)
  assert got["iou"][0] == pytest.approx(1 / 3)
  assert got["sensitivity"][0] == pytest.approx(1 / 2)
  assert got["specificity"][0] == pytest.approx(2 / 3)
  assert got["accuracy"][0] == pytest.approx(3 / 5)
  # Masking the missed pixel: perfect sensitivity.
  valid = np.array([[1, 1, 1, 1, 0]])
  assert metrics.binary_scores(pred, label, valid)["sensitivity"][0] == 1.0
  empty = metrics.binary_scores(np.zeros((1, 3)), np.zeros((1, 3)))
  assert np.isnan(empty["dice"][0]) and np.isnan(empty["sensitivity"][0])
  assert empty["specificity"][0] == 1.0


def test_pixel_auc_matches_sklearn():
  rng = np.random.default_rng(2)
  label = rng.integers(0, 2, (3, 8, 8))
  probs = np.clip(rng.normal(0.3 + 0.3 * label, 0.2), 0, 1)
  valid = rng.random(label.shape) > 0.3
  assert metrics.pixel_auc(probs, label, valid) == pytest.approx(
      skm.roc_auc_score(label[valid], probs[valid]))


def _brute_boundary(mask):
  """Foreground pixels with a face neighbour in the background (zero padding)."""
  padded = np.pad(mask, 1)
  inner = tuple(slice(1, -1) for _ in range(mask.ndim))
  edge = np.zeros_like(mask)
  for axis in range(mask.ndim):
    for shift in (-1, 1):
      edge |= ~np.roll(padded, shift, axis)[inner]
  return mask & edge


def _brute_hd(a, b, spacing, q=95):
  pa = np.argwhere(_brute_boundary(a)) * spacing
  pb = np.argwhere(_brute_boundary(b)) * spacing
  d = cdist(pa, pb)
  return max(np.percentile(d.min(1), q), np.percentile(d.min(0), q))


@pytest.mark.parametrize("shape,spacing", [((15, 12), (1.0, 1.0)),
                                           ((14, 9), (0.5, 2.0)),
                                           ((7, 8, 6), (1.0, 1.0, 2.5))])
def test_hausdorff_matches_brute_force(shape, spacing):
  rng = np.random.default_rng(3)
  for density in (0.3, 0.7, 0.8):  # dense masks have interior and concave pixels
    a = rng.random(shape) < density
    b = rng.random(shape) < density
    for q in (95, 100):
      assert metrics.hausdorff_distance(a, b, spacing, q) == pytest.approx(
          _brute_hd(a, b, np.array(spacing), q))


def test_hausdorff_known_cases():
  a = np.zeros((40, 40), bool)
  a[5:25, 5:25] = True
  for k in (1, 3, 6):  # a square shifted by k pixels: the Hausdorff distance is k
    b = np.roll(a, k, axis=1)
    assert metrics.hausdorff_distance(a, b, percentile=100) == pytest.approx(k)
    assert metrics.hausdorff_distance(a, b, spacing=(1.0, 0.5), percentile=100) == (
        pytest.approx(0.5 * k))
  # Concentric squares one pixel apart: the 4 outer corners (3% of the outer
  # boundary) are sqrt(2) away; every other boundary pixel is 1 away.
  inner = np.zeros((40, 40), bool)
  inner[6:36, 6:36] = True
  outer = np.zeros((40, 40), bool)
  outer[5:37, 5:37] = True
  assert metrics.hausdorff_distance(inner, outer) == pytest.approx(1.0)
  assert metrics.hausdorff_distance(inner, outer, percentile=100) == pytest.approx(
      np.sqrt(2))
  assert metrics.hausdorff_distance(a, a) == 0.0
  empty = np.zeros_like(a)
  assert np.isnan(metrics.hausdorff_distance(empty, empty))
  assert metrics.hausdorff_distance(a, empty) == np.inf
  assert metrics.hausdorff_distance(empty, a) == np.inf


def test_hd95_batch_uses_foreground_and_valid():
  label = np.zeros((2, 20, 20), int)
  label[:, 4:12, 4:12] = 2
  pred = np.roll(label, 2, axis=2)
  got = metrics.hd95(pred, label, foreground=2)
  np.testing.assert_allclose(got, [metrics.hausdorff_distance(pred[0] == 2,
                                                              label[0] == 2)] * 2)
  valid = np.zeros((2, 20, 20), bool)
  assert np.isnan(metrics.hd95(pred, label, valid, foreground=2)).all()


def test_binned_auc_close_to_exact():
  rng = np.random.default_rng(4)
  label = rng.random(200_000) < 0.1
  probs = 1 / (1 + np.exp(-rng.normal(3.0 * label - 1.5, 2.5)))
  binned = metrics.BinnedAUC()
  binned.update(probs[:50_000], label[:50_000], np.ones(50_000))
  binned.update(probs[50_000:], label[50_000:], np.ones(150_000))
  assert binned.result() == pytest.approx(skm.roc_auc_score(label, probs), abs=1e-3)
  # Tied scores (a few distinct values) count half, as in the exact AUC.
  tied = np.round(probs, 1)
  binned = metrics.BinnedAUC()
  binned.update(tied, label, np.ones_like(tied))
  assert binned.result() == pytest.approx(skm.roc_auc_score(label, tied), abs=1e-9)
  coarse = metrics.BinnedAUC(bins=4)  # ties within a bin count half: honest check
  coarse.update(probs, label, np.ones_like(probs))
  assert abs(coarse.result() - skm.roc_auc_score(label, probs)) > 1e-3


def _logits(label, rng, k):
  return 2.0 * np.eye(k)[label] + rng.normal(size=(*label.shape, k))


@pytest.mark.parametrize("auc_bins", [None, 4096])
def test_accumulator_matches_sklearn(auc_bins):
  rng = np.random.default_rng(5)
  acc = metrics.SegmentationMetrics(num_classes=2, auc_bins=auc_bins)
  labels, logits, valids = [], [], []
  for step in range(2):
    label = rng.integers(0, 2, (3, 16, 16))
    logit = _logits(label, rng, 2)
    valid = rng.random(label.shape) > 0.1
    example_mask = np.array([1, 1, 0]) if step else np.ones(3)
    # Padded examples carry garbage that must not count.
    logit[example_mask == 0] = 100.0
    acc.update(logit, label, valid, example_mask)
    keep = example_mask > 0
    labels.append(label[keep]), logits.append(logit[keep]), valids.append(valid[keep])
  label, logit, valid = (np.concatenate(x) for x in (labels, logits, valids))
  pred = logit.argmax(-1)
  got = acc.aggregate()
  assert got["num_images"] == 5
  y, p = label[valid], pred[valid]
  assert got["pooled_dice"] == pytest.approx(skm.f1_score(y, p))
  assert got["pooled_f1"] == got["pooled_dice"]
  assert got["pooled_iou"] == pytest.approx(skm.jaccard_score(y, p))
  assert got["pooled_sensitivity"] == pytest.approx(skm.recall_score(y, p))
  assert got["pooled_specificity"] == pytest.approx(skm.recall_score(y, p, pos_label=0))
  assert got["pooled_accuracy"] == pytest.approx(skm.accuracy_score(y, p))
  per_image = [skm.f1_score(label[i][valid[i]], pred[i][valid[i]]) for i in range(5)]
  assert got["dice"] == pytest.approx(np.mean(per_image))
  hd = [metrics.hausdorff_distance((pred[i] == 1) & valid[i], (label[i] == 1) & valid[i])
        for i in range(5)]
  assert got["hd95"] == pytest.approx(np.mean(hd))
  fg_prob = np.exp(logit[..., 1]) / np.exp(logit).sum(-1)
  exact = skm.roc_auc_score(y, fg_prob[valid])
  assert got["pixel_auc"] == pytest.approx(exact, abs=1e-3 if auc_bins else 1e-9)


def test_accumulator_multiclass_and_probabilities():
  rng = np.random.default_rng(6)
  label = rng.integers(0, 3, (2, 8, 8))
  logit = _logits(label, rng, 3)
  probs = np.exp(logit) / np.exp(logit).sum(-1, keepdims=True)
  acc = metrics.SegmentationMetrics(num_classes=3, foreground=2, from_logits=False,
                                    compute_hd95=False)
  acc.update(probs, label)
  got = acc.aggregate()
  assert "hd95" not in got
  pred = probs.argmax(-1)
  pooled = skm.f1_score(label.ravel(), pred.ravel(), average=None)
  for k in range(3):
    assert got[f"pooled_dice_class{k}"] == pytest.approx(pooled[k])
    per_image = skm.f1_score(label[0].ravel(), pred[0].ravel(), average=None)[k]
    per_image += skm.f1_score(label[1].ravel(), pred[1].ravel(), average=None)[k]
    assert got[f"dice_class{k}"] == pytest.approx(per_image / 2)
  assert got["pooled_dice"] == pytest.approx(pooled[2])
  assert got["pixel_auc"] == pytest.approx(
      skm.roc_auc_score(label.ravel() == 2, probs[..., 2].ravel()), abs=1e-3)
  acc.reset()
  assert np.isnan(acc.aggregate()["dice"])
