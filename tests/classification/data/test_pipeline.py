"""Grain pipelines: class-balanced sampling (deterministic, resumable) and padded eval."""

import numpy as np
import pytest

from medjax.classification.data import pipeline
from medjax.segmentation.data.errors import DataError


class _Source:
  """An in-memory source: image value i, label 1 for the last 2 of 10 examples."""

  def __init__(self, n=10, positives=2):
    self.labels = [0] * (n - positives) + [1] * positives

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, i):
    return {"image": np.full((2, 2, 1), i, np.uint8), "label": self.labels[i],
            "id": f"x{i}".encode()}


def _labels_drawn(ds, batches):
  it = iter(ds)
  return np.concatenate([next(it)["label"] for _ in range(batches)])


@pytest.mark.slow
def test_balanced_sampling_draws_classes_equally_and_repeatably():
  source = _Source()
  make = lambda seed: pipeline.train_dataset(  # noqa: E731
      source, pipeline.Preprocess(False), 10, seed, sampling="balanced",
      labels=source.labels)
  drawn = _labels_drawn(make(0), 40)
  assert abs(drawn.mean() - 0.5) < 0.05  # 20% positives in the data
  np.testing.assert_array_equal(drawn, _labels_drawn(make(0), 40))
  assert not np.array_equal(drawn, _labels_drawn(make(1), 40))
  shuffled = pipeline.train_dataset(source, pipeline.Preprocess(False), 10, 0)
  assert _labels_drawn(shuffled, 40).mean() == pytest.approx(0.2)


def test_balanced_sampling_resumes_exactly():
  source = _Source()
  ds = pipeline.train_dataset(source, pipeline.Preprocess(False), 4, 3, sampling="balanced",
                              labels=source.labels)
  it = iter(ds)
  for _ in range(3):
    next(it)
  state = it.get_state()
  expected = [next(it)["image"] for _ in range(4)]
  resumed = iter(ds)
  resumed.set_state(state)
  for want in expected:
    np.testing.assert_array_equal(next(resumed)["image"], want)


def test_balanced_sampling_needs_labels():
  with pytest.raises(DataError, match="one class label per training example"):
    pipeline.train_dataset(_Source(), pipeline.Preprocess(False), 2, 0, sampling="balanced")


def test_eval_batches_pad_with_masked_rows():
  batches = list(pipeline.eval_batches(_Source(n=5, positives=1), pipeline.Preprocess(False), 4))
  assert len(batches) == 2
  np.testing.assert_array_equal(np.concatenate([b["_mask"] for b in batches]),
                                [1, 1, 1, 1, 1, 0, 0, 0])
  assert list(batches[1]["id"]) == ["x4", "", "", ""]
  np.testing.assert_allclose(batches[0]["image"][:, 0, 0, 0], np.arange(4) / 255.0)


def test_preprocess_multi_label_applies_policy():
  example = {"image": np.zeros((2, 2, 1), np.uint8), "labels": np.array([1, -1, -2], np.int8)}
  out = pipeline.Preprocess(True, "ones")(example)
  np.testing.assert_array_equal(out["targets"], [1, 1, 0])
  np.testing.assert_array_equal(out["label_mask"], [1, 1, 0])
