import os

import numpy as np
from PIL import Image
import pytest

from medjax.segmentation.data import imageio, pairing
from medjax.segmentation.data.errors import DataError
from tests.segmentation.data import raw_fixtures as rf


def test_tiff_keeps_int16(tmp_path):
  image = np.array([[-1000, 0], [400, 3000]], np.int16)
  rf.write_tif(str(tmp_path / "ct.tif"), image)
  out = imageio.read_image(tmp_path / "ct.tif")
  assert out.dtype == np.int16
  np.testing.assert_array_equal(out, image)


def test_lzw_tiff_falls_back_to_pil(tmp_path):
  image = np.random.default_rng(0).integers(0, 256, (5, 4, 3)).astype(np.uint8)
  rf.write_tif(str(tmp_path / "rgb.tif"), image, lzw=True)
  np.testing.assert_array_equal(imageio.read_image(str(tmp_path / "rgb.tif")), image)


@pytest.mark.parametrize("suffix", [".png", ".gif", ".bmp"])
def test_lossless_formats_round_trip(tmp_path, suffix):
  image = np.random.default_rng(1).integers(0, 256, (6, 7)).astype(np.uint8)
  rf.write_pil(str(tmp_path / f"x{suffix}"), image)
  np.testing.assert_array_equal(imageio.read_image(str(tmp_path / f"x{suffix}")), image)


def test_palette_image_reads_colours_not_indices(tmp_path):
  im = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
  im.putpalette([0, 0, 0, 255, 255, 255])
  im.save(tmp_path / "m.png")
  np.testing.assert_array_equal(imageio.read_image(str(tmp_path / "m.png")), [[0, 255], [255, 0]])


def test_read_mask_maps_0_255_to_0_1_and_keeps_labels(tmp_path):
  rf.write_pil(str(tmp_path / "bin.png"), np.array([[0, 255], [255, 0]], np.uint8))
  rf.write_pil(str(tmp_path / "lab.png"), np.array([[0, 1], [2, 3]], np.uint8))
  np.testing.assert_array_equal(imageio.read_mask(str(tmp_path / "bin.png")), [[0, 1], [1, 0]])
  np.testing.assert_array_equal(imageio.read_mask(str(tmp_path / "lab.png")), [[0, 1], [2, 3]])
  rf.write_pil(str(tmp_path / "rgb.png"), (np.zeros((2, 2, 3)) + [0, 9, 0]).astype(np.uint8))
  with pytest.raises(DataError, match="rgb.png"):
    imageio.read_mask(str(tmp_path / "rgb.png"))


@pytest.mark.parametrize("content", [b"", b"not an image at all"])
def test_corrupt_image_names_path(tmp_path, content):
  for name in ("bad.tif", "bad.png"):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=str(tmp_path / name)):
      imageio.read_image(str(tmp_path / name))


def test_missing_file_and_dir_name_path(tmp_path):
  with pytest.raises(DataError, match="nope.png"):
    imageio.read_image(str(tmp_path / "nope.png"))
  with pytest.raises(DataError, match=f"{tmp_path / 'gone'}.*masks"):
    imageio.require_dir(str(tmp_path / "gone"), "masks")
  os.makedirs(tmp_path / "empty")
  with pytest.raises(DataError, match="empty"):
    imageio.list_images(str(tmp_path / "empty"))


def test_mask_of_wrong_size_names_both_files(tmp_path):
  rf.write_tif(str(tmp_path / "images" / "a.tif"), np.zeros((4, 5), np.int16))
  rf.write_pil(str(tmp_path / "masks" / "a.png"), np.zeros((5, 4), np.uint8))
  pair = pairing.pair_folder(str(tmp_path / "images"), str(tmp_path / "masks"))[0]
  with pytest.raises(DataError, match=r"a\.png.*\(5, 4\).*a\.tif.*\(4, 5\)"):
    pairing.load_pair(pair, np.int16)


def test_pairing_by_stem_with_suffixes(tmp_path):
  for name in ("a.png", "b.png", "c.png"):
    rf.write_pil(str(tmp_path / "images" / name), np.zeros((2, 2), np.uint8))
  for name in ("a.png", "b_mask.gif", "c_gt.png", "zzz_mask.png"):
    rf.write_pil(str(tmp_path / "masks" / name), np.zeros((2, 2), np.uint8))
  pairs = pairing.pair_folder(str(tmp_path / "images"), str(tmp_path / "masks"))
  assert [(p.id, os.path.basename(p.mask)) for p in pairs] == [
      ("a", "a.png"), ("b", "b_mask.gif"), ("c", "c_gt.png")]
  rf.write_pil(str(tmp_path / "masks" / "a_mask.png"), np.zeros((2, 2), np.uint8))
  with pytest.raises(DataError, match="several"):
    pairing.pair_folder(str(tmp_path / "images"), str(tmp_path / "masks"))
  rf.write_pil(str(tmp_path / "images" / "d.png"), np.zeros((2, 2), np.uint8))
  with pytest.raises(DataError, match="d.png"):
    pairing.match_by_stem("d.png", {}, str(tmp_path / "masks"))


def test_cast_image_refuses_lossy(tmp_path):
  assert pairing.cast_image(np.array([1, 2], np.uint16), np.int16, "x").dtype == np.int16
  with pytest.raises(DataError, match="x.tif"):
    pairing.cast_image(np.array([40000], np.uint16), np.int16, "x.tif")
