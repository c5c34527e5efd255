"""generative.figures: PNGs of the laid-out size, contours drawn over the images."""

import numpy as np
import pytest
from PIL import Image

from medjax.generative import figures


def _pairs(n, channels=1, seed=0):
  rng = np.random.default_rng(seed)
  images = rng.random((n, 12, 12, channels)).astype(np.float32)
  masks = np.zeros((n, 12, 12), np.int32)
  masks[:, 3:8, 4:9] = 1
  masks[:, 9:11, 1:3] = 2
  return images, masks


def _png(path):
  with Image.open(path) as image:
    return image.format, image.size, np.asarray(image.convert("RGB"))


def test_pair_grid_and_sample_grid_write_pngs_of_the_laid_out_size(tmp_path):
  images, masks = _pairs(3)
  fake, fake_masks = _pairs(3, seed=1)
  figures.pair_grid(images, masks, fake, fake_masks, tmp_path / "pairs.png", title="t",
                    columns=2)  # 3 pairs in 2 columns: 2 real + 2 generated rows
  fmt, size, pixels = _png(tmp_path / "pairs.png")
  assert fmt == "PNG" and size == (round((1.6 * 2 + 0.4) * 100), round((1.6 * 4 + 0.4) * 100))
  # The class-1 contour's colour (#ff3b30) is drawn: pure-grey images have no such red.
  red = (pixels[..., 0] > 200) & (pixels[..., 1] < 120) & (pixels[..., 2] < 120)
  assert red.sum() > 20
  rgb, rgb_masks = _pairs(5, channels=3)
  figures.sample_grid(rgb, rgb_masks, tmp_path / "grid.png", columns=4)
  want = (round(1.6 * 4 * 100), round((1.6 * 2 + 0.3) * 100))  # 5 pairs in 4 columns
  assert _png(tmp_path / "grid.png")[:2] == ("PNG", want)


def test_pair_grid_refuses_unequal_counts(tmp_path):
  images, masks = _pairs(2)
  with pytest.raises(ValueError, match="2 real images, 2 masks, 1 generated images"):
    figures.pair_grid(images, masks, images[:1], masks[:1], tmp_path / "x.png")
