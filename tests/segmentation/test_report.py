"""medjax.segmentation.report: the error map's colours and the overlays figure."""

import matplotlib.image
import numpy as np

from medjax.segmentation import report

TP, FP, FN = (report.ERROR_COLOURS[k] for k in
              ("true positive", "false positive", "false negative"))


def test_error_map_colours_each_pixel_by_its_outcome():
  truth = np.array([[1, 1, 0, 0],
                    [2, 0, 0, 2],
                    [1, 0, 2, 0]])
  pred = np.array([[1, 0, 1, 0],
                   [1, 0, 0, 2],   # (1, 0): wrong foreground class, still foreground
                   [1, 1, 0, 0]])
  valid = np.ones((3, 4), bool)
  valid[2] = False  # outside the valid region: never coloured
  rgba = report.error_map(truth, pred, valid)
  assert rgba.shape == (3, 4, 4)
  expected = {(0, 0): TP, (1, 0): TP, (1, 3): TP, (0, 2): FP, (0, 1): FN}
  for (y, x), colour in expected.items():
    np.testing.assert_allclose(rgba[y, x, :3], colour)
    assert rgba[y, x, 3] > 0
  coloured = {tuple(p) for p in np.argwhere(rgba[..., 3] > 0)}
  assert coloured == set(expected)  # true negatives and row 2 stay transparent
  assert not rgba[~valid].any()


def test_error_map_of_a_perfect_prediction_has_no_errors():
  truth = np.array([[0, 1], [1, 0]])
  rgba = report.error_map(truth, truth, np.ones_like(truth))
  assert {tuple(np.round(c, 6)) for c in rgba[truth > 0, :3]} == {tuple(np.round(TP, 6))}
  assert not rgba[truth == 0].any()


class _Evaluator:
  """Three 8x8 images; the 'model' predicts the truth shifted one pixel right."""
  name = "val"

  def __init__(self):
    label = np.zeros((3, 8, 8), np.int32)
    label[:, 2:5, 2:5] = 1
    self.batch = {"image": np.random.default_rng(0).random((3, 8, 8, 1), np.float32),
                  "label": label, "valid": np.ones((3, 8, 8), np.float32),
                  "_mask": np.array([1, 1, 0], np.float32), "id": ["a", "b", "pad"]}

  def batches(self):
    yield self.batch

  def predict_images(self, predict_fn, images):
    del predict_fn
    shifted = np.roll(self.batch["label"][:len(images)], 1, axis=2)
    return np.stack([1 - shifted, shifted], -1).astype(np.float32)


def test_overlays_figure_is_written_with_four_columns(tmp_path):
  out = report.write_overlays(_Evaluator(), None, str(tmp_path), num_images=4)
  assert out == {"overlays": str(tmp_path / "overlays.png")}
  height, width = matplotlib.image.imread(out["overlays"]).shape[:2]
  # Two real images (the padded one is left out): 2 rows of 4 columns, 3 inches each.
  assert abs(width / height - 12 / (2 * 3 + 0.6)) < 0.05


def test_no_real_images_no_figure(tmp_path):
  evaluator = _Evaluator()
  evaluator.batch["_mask"][:] = 0
  assert report.write_overlays(evaluator, None, str(tmp_path)) == {}
  assert not (tmp_path / "overlays.png").exists()
