"""Figures render to PNGs of the laid-out size for 2D, 3D, tabular and sequence inputs."""

import numpy as np
import pytest
from PIL import Image

from medjax.explain import figures


def size(path):
  with Image.open(path) as image:
    return image.format, image.size


@pytest.mark.slow
def test_figures_render(tmp_path):
  rng = np.random.default_rng(0)
  images, maps = rng.random((3, 8, 8, 1)), rng.normal(size=(3, 8, 8))
  figures.overlays_2d(images, maps, tmp_path / "o.png", titles=["a", "b", "c"], signed=True)
  assert size(tmp_path / "o.png") == ("PNG", (round(2.6 * 3 * 110), round(5.4 * 110)))
  figures.orthogonal_slices(rng.random((6, 7, 8)), rng.random((6, 7, 8)), tmp_path / "s.png",
                            centre=(1, 2, 3))
  assert size(tmp_path / "s.png") == ("PNG", (1210, 440))
  figures.feature_bars(rng.normal(size=30), [f"f{i}" for i in range(30)], tmp_path / "b.png",
                       top=5)
  assert size(tmp_path / "b.png") == ("PNG", (770, round((0.3 * 5 + 1.5) * 110)))
  figures.sequence_heatmap(rng.normal(size=(10, 4)), list("abcd"), tmp_path / "h.png",
                           mask=rng.random((10, 4)) > 0.5)
  assert size(tmp_path / "h.png")[0] == "PNG"


def test_faithfulness_curves_render(tmp_path):
  fraction = np.linspace(0, 1, 5)
  mode = {"fraction": fraction, "curve": np.ones((2, 5)), "random_curve": np.ones((2, 5)),
          "auc": np.ones(2), "random_auc": np.ones(2)}
  figures.faithfulness_curves({"per_example": {"deletion": mode, "insertion": mode}},
                              tmp_path / "f.png")
  assert size(tmp_path / "f.png") == ("PNG", (1100, 440))
