import numpy as np
import pytest
from PIL import Image

from medjax.classification import figures


def _data(kind, n=60, k=3, seed=0):
  rng = np.random.default_rng(seed)
  if kind == "binary":
    return rng.integers(0, 2, n), rng.random(n)
  if kind == "multiclass":
    probs = rng.random((n, k))
    return rng.integers(0, k, n), probs / probs.sum(1, keepdims=True)
  y = rng.integers(0, 2, (n, k))
  y[:, 2] = 0  # a finding without positives: left out of the ROC plot, still calibrated
  return y, rng.random((n, k))


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_figures_are_written(tmp_path, kind):
  y, probs = _data(kind)
  names = ["normal", "pneumonia"] if kind == "binary" else ["a", "b", "c"]
  for draw, name in ((figures.roc_figure, "roc.png"),
                     (figures.reliability_figure, "calibration.png")):
    path = tmp_path / name
    mask = np.ones(y.shape, bool) if kind == "multilabel" else None
    draw(y, probs, str(path), kind=kind, class_names=names, title=kind, mask=mask)
    with Image.open(path) as image:
      assert image.format == "PNG" and min(image.size) > 300
