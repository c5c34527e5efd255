import os

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest

from medjax.segmentation.volumes import figures, metrics


def _row(case_id, **values):
  return metrics.CaseMetrics(case_id, {k: float(v) for k, v in values.items()})


def _case(seed, shape=(16, 14, 10)):
  rng = np.random.default_rng(seed)
  image = rng.normal(size=shape).astype(np.float32)
  truth = np.zeros(shape, np.int16)
  truth[4:12, 3:10, 2:8] = 1
  truth[6:9, 5:8, 3:6] = 2
  pred = np.roll(truth, seed, axis=0)
  return image, truth, pred


def _has_colour(path, rgb, tol=0.06):
  """Whether the panels (above the legend) hold a pixel of this colour."""
  pixels = matplotlib.image.imread(path)[..., :3]
  panels = pixels[: int(pixels.shape[0] * 0.8)]
  return bool(np.any(np.all(np.abs(panels - np.asarray(rgb)) < tol, axis=-1)))


def test_best_median_worst_on_a_known_table():
  rows = [_row("a", dice_mean=0.5, hd95_mm_mean=3.0), _row("b", dice_mean=0.9, hd95_mm_mean=1.0),
          _row("c", dice_mean=np.nan, hd95_mm_mean=np.nan),
          _row("d", dice_mean=0.7, hd95_mm_mean=8.0), _row("e", dice_mean=0.1, hd95_mm_mean=2.0)]
  assert figures.best_median_worst(rows) == {"best": "b", "median": "a", "worst": "c"}
  # By distance (lower is better): b 1, e 2, a 3, d 8, c NaN.
  assert figures.best_median_worst(rows, "hd95_mm_mean", higher_is_better=False) == {
      "best": "b", "median": "a", "worst": "c"}
  four = rows[:2] + rows[3:]  # b 0.9, d 0.7, a 0.5, e 0.1: median is rank (4 - 1) // 2 = 1
  assert figures.best_median_worst(four) == {"best": "b", "median": "d", "worst": "e"}
  with pytest.raises(ValueError):
    figures.best_median_worst([])


def test_slice_centre():
  truth = np.zeros((10, 8, 6), np.int16)
  truth[2:5, 1:4, 0:2] = 1  # centre of mass (3, 2, 0.5) -> rounds to (3, 2, 0)
  assert figures.slice_centre(truth) == (3, 2, 0)
  assert figures.slice_centre(np.zeros((10, 8, 6))) == (5, 4, 3)


@pytest.mark.slow
def test_write_case_figures_files_and_outlines(tmp_path):
  ids = ["case/0", "case_1", "case_2"]
  cases = {i: _case(seed) for seed, i in enumerate(ids)}
  rows = [metrics.case_metrics(i, c[2], c[1], (1, 1, 2), num_classes=3)
          for i, c in cases.items()]
  assert rows[0].values["dice_mean"] == 1.0  # case 0's prediction is the truth
  paths = figures.write_case_figures(cases, rows, str(tmp_path))
  assert [os.path.basename(p) for p in paths] == [
      "best_case_0.png", "median_case_1.png", "worst_case_2.png"]
  for path in paths:
    with open(path, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 5000
    assert _has_colour(path, plt.cm.tab10(0)[:3]) and _has_colour(path, plt.cm.tab10(1)[:3])
  # A callable source, and a case without labels has no class outline.
  image = _case(0)[0]
  blank = np.zeros(image.shape, np.int16)
  loaded = []
  blank_paths = figures.write_case_figures(
      lambda i: loaded.append(i) or (image[..., None], blank, blank, (1, 1, 3)),
      [_row("only", dice_mean=1.0)], str(tmp_path / "blank"))
  assert loaded == ["only"] and len(blank_paths) == 3  # one case: loaded once, drawn 3 times
  assert not _has_colour(blank_paths[0], plt.cm.tab10(0)[:3])
  with pytest.raises(ValueError, match="grid"):
    figures.orthogonal_slices(image, blank[:-1], blank, str(tmp_path / "x.png"), "bad")
