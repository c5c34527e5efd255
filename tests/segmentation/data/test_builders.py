import logging
import os
import shutil

import numpy as np
import pytest

from medjax.segmentation.data import pairing, phantom, sources
from medjax.segmentation.data.errors import DataError
from tests.segmentation.data import raw_fixtures as rf

SHARED = os.environ.get("MEDJAX_SHARED_DATA", "")


def by_id(source) -> dict:
  return {ex["id"].decode(): ex for ex in (source[i] for i in range(len(source)))}


def test_phantom_small_config(tmp_path):
  src = sources.load_source("ct_phantom", "train", tmp_path, num_train=4, num_val=2, size=32)
  assert len(src) == 4
  assert len(sources.load_source("ct_phantom", "val", tmp_path, num_train=4, num_val=2,
                                 size=32)) == 2
  ex = src[0]
  assert ex["image"].shape == (32, 32, 1) and ex["image"].dtype == np.int16
  assert ex["mask"].shape == (32, 32) and ex["mask"].dtype == np.uint8
  np.testing.assert_array_equal(ex["valid"], 1)
  assert set(np.unique(ex["mask"])) <= {0, 1}


def test_phantom_is_deterministic_and_matches_generator(tmp_path):
  kwargs = dict(num_train=3, num_val=1, size=24, seed=5)
  a = by_id(sources.load_source("ct_phantom", "train", tmp_path / "a", **kwargs))
  b = by_id(sources.load_source("ct_phantom", "train", tmp_path / "b", **kwargs))
  assert sorted(a) == ["phantom_train_00000", "phantom_train_00001", "phantom_train_00002"]
  for (i, image, label), key in zip(phantom.phantom_examples(5, 0, 3, 24), sorted(a)):
    np.testing.assert_array_equal(a[key]["image"][..., 0], image)
    np.testing.assert_array_equal(b[key]["image"], a[key]["image"])
    np.testing.assert_array_equal(a[key]["mask"], label)
  other = by_id(sources.load_source("ct_phantom", "train", tmp_path / "a", num_train=3,
                                    num_val=1, size=24, seed=6))
  assert not np.array_equal(other["phantom_train_00000"]["image"],
                            a["phantom_train_00000"]["image"])


def test_phantom_intensities_and_label_fraction():
  for i in range(6):
    image, label = phantom.phantom_slice(np.random.default_rng(i), 64)
    assert 0.05 < label.mean() < 0.35
    lungs, corner = image[label == 1], image[:4, :4]
    assert -900 < np.median(lungs) < -750  # lung parenchyma, vessels included
    assert np.abs(np.mean(corner) + 1000) < 40  # air outside the body
    assert np.median(image[(label == 0) & (image > -500)]) > -50  # soft tissue
  a, b = (phantom.phantom_slice(np.random.default_rng(3), 32) for _ in range(2))
  np.testing.assert_array_equal(a[0], b[0])


def test_lung_ct_2d(tmp_path):
  written = rf.write_lung(tmp_path / "raw")
  for split, count in (("train", 3), ("val", 2)):
    got = by_id(sources.load_source("lung_ct_2d", split, tmp_path / "data", tmp_path / "raw"))
    assert len(got) == count
    for ident, ex in got.items():
      want_split, image, mask = written[ident]
      assert want_split == split and ex["image"].dtype == np.int16
      np.testing.assert_array_equal(ex["image"][..., 0], image)
      np.testing.assert_array_equal(ex["mask"], mask)
      np.testing.assert_array_equal(ex["valid"], 1)
  with pytest.raises(DataError, match="test"):
    sources.load_source("lung_ct_2d", "test", tmp_path / "data", tmp_path / "raw")


def test_lung_ct_2d_original_layout(tmp_path):
  rf.write_lung(tmp_path / "raw", splits=(("test", 2),), size=(8, 8))
  for kind in ("images", "masks"):
    os.rename(tmp_path / "raw" / "test" / f"{kind}_256", tmp_path / "raw" / "test" / kind)
  src = sources.load_source("lung_ct_2d", "test", tmp_path / "d", tmp_path / "raw",
                            image_subdir="images", mask_subdir="masks")
  assert len(src) == 2 and src[0]["image"].shape == (8, 8, 1)


def test_drive_splits_by_id(tmp_path):
  written = rf.write_drive(tmp_path / "raw")
  ids = {s: by_id(sources.load_source("drive", s, tmp_path / "d", tmp_path / "raw"))
         for s in ("train", "val", "test")}
  assert {s: sorted(v) for s, v in ids.items()} == {
      "train": ["21", "22"], "val": ["37"], "test": ["01"]}
  for split in ids.values():
    for ident, ex in split.items():
      image, vessels, fov = written[ident]
      assert ex["image"].shape == (12, 10, 3) and ex["image"].dtype == np.uint8
      np.testing.assert_array_equal(ex["image"], image)
      np.testing.assert_array_equal(ex["mask"], vessels)
      np.testing.assert_array_equal(ex["valid"], fov)


def test_image_folder_with_splits_suffixes_and_valid(tmp_path):
  rng = np.random.default_rng(0)
  raw = tmp_path / "raw"
  for split, names in (("train", ("a", "b")), ("val", ("c",))):
    for n in names:
      image = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
      rf.write_pil(str(raw / split / "images" / f"{n}.png"), image)
      rf.write_pil(str(raw / split / "masks" / f"{n}_mask.png"),
                   rng.integers(0, 3, (6, 5), dtype=np.uint8))
      rf.write_pil(str(raw / split / "valid" / f"{n}.png"), rf.binary(rng, (6, 5)))
  for split, names in (("train", ("a", "b")), ("val", ("c",))):
    got = by_id(sources.load_source("image_folder", split, tmp_path / "d", raw))
    assert sorted(got) == list(names)
    for n, ex in got.items():
      folder = raw / split
      np.testing.assert_array_equal(ex["image"], rf.read_back(folder / "images" / f"{n}.png"))
      np.testing.assert_array_equal(ex["mask"], rf.read_back(folder / "masks" / f"{n}_mask.png"))
      np.testing.assert_array_equal(ex["valid"], rf.read_back(folder / "valid" / f"{n}.png") // 255)


def test_image_folder_single_split_grey(tmp_path):
  raw = tmp_path / "raw"
  rf.write_pil(str(raw / "images" / "x.png"), np.full((4, 4), 7, np.uint8))
  rf.write_pil(str(raw / "masks" / "x.png"), np.array([[0, 255]] * 4, np.uint8).repeat(2, 1))
  src = sources.load_source("image_folder", "train", tmp_path / "d", raw)
  assert src[0]["image"].shape == (4, 4, 1)
  np.testing.assert_array_equal(src[0]["mask"], [[0, 0, 1, 1]] * 4)


def test_new_raw_dir_or_changed_files_are_not_served_stale(tmp_path):
  first = rf.write_lung(tmp_path / "raw1", splits=(("train", 1),), seed=1)
  second = rf.write_lung(tmp_path / "raw2", splits=(("train", 1),), seed=2)
  for raw, written in ((tmp_path / "raw1", first), (tmp_path / "raw2", second)):
    ex = sources.load_source("lung_ct_2d", "train", tmp_path / "d", raw)[0]
    np.testing.assert_array_equal(ex["image"][..., 0], written["ID_train_00"][1])
  changed = rf.write_lung(tmp_path / "raw1", splits=(("train", 1),), size=(9, 9), seed=3)
  ex = sources.load_source("lung_ct_2d", "train", tmp_path / "d", tmp_path / "raw1")[0]
  np.testing.assert_array_equal(ex["image"][..., 0], changed["ID_train_00"][1])


def test_bad_raw_data_raises_data_error_naming_files(tmp_path):
  with pytest.raises(DataError, match=str(tmp_path / "missing")):
    sources.load_source("drive", "train", tmp_path / "d", tmp_path / "missing")
  rf.write_drive(tmp_path / "nomask", test_ids=())
  shutil.rmtree(tmp_path / "nomask" / "training" / "mask")
  with pytest.raises(DataError, match=r"training/mask.*FOV"):
    sources.load_source("drive", "train", tmp_path / "d", tmp_path / "nomask")
  rf.write_lung(tmp_path / "corrupt", splits=(("train", 2),))
  bad = tmp_path / "corrupt" / "train" / "images_256" / "ID_train_01.tif"
  bad.write_bytes(b"garbage")
  with pytest.raises(DataError, match=str(bad)):
    sources.load_source("lung_ct_2d", "train", tmp_path / "d", tmp_path / "corrupt")
  rf.write_lung(tmp_path / "shape", splits=(("val", 1),))
  rf.write_tif(str(tmp_path / "shape" / "val" / "masks_256" / "ID_val_00.tif"),
               np.zeros((3, 3), np.uint8))
  with pytest.raises(DataError, match=r"masks_256/ID_val_00.tif.*images_256/ID_val_00.tif"):
    sources.load_source("lung_ct_2d", "val", tmp_path / "d", tmp_path / "shape")
  with pytest.raises(DataError, match="raw_dir is required"):
    sources.load_source("image_folder", "train", tmp_path / "d")


def _link(src_dir, dst_dir, names):
  os.makedirs(dst_dir)
  for n in names:
    os.symlink(os.path.join(src_dir, n), os.path.join(dst_dir, n))


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED, "lung_ct_2d")),
                    reason="shared lung_ct_2d data absent")
def test_real_lung_ct_2d_slice(tmp_path):
  real = os.path.join(SHARED, "lung_ct_2d", "val")
  name = sorted(os.listdir(os.path.join(real, "images_256")))[0]
  for kind in ("images_256", "masks_256"):
    _link(os.path.join(real, kind), tmp_path / "raw" / "val" / kind, [name])
  ex = sources.load_source("lung_ct_2d", "val", tmp_path / "d", tmp_path / "raw")[0]
  assert ex["image"].shape == (256, 256, 1) and ex["image"].dtype == np.int16
  assert set(np.unique(ex["mask"])) == {0, 1} and 0.05 < ex["mask"].mean() < 0.6
  assert np.median(ex["image"][ex["mask"] == 1]) < -500  # lungs are dark


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED, "drive")),
                    reason="shared DRIVE data absent")
def test_real_drive_image(tmp_path):
  real = os.path.join(SHARED, "drive", "training")
  for kind, name in (("images", "21_training.tif"), ("1st_manual", "21_manual1.gif"),
                     ("mask", "21_training_mask.gif")):
    _link(os.path.join(real, kind), tmp_path / "raw" / "training" / kind, [name])
  ex = sources.load_source("drive", "train", tmp_path / "d", tmp_path / "raw")[0]
  assert ex["id"] == b"21" and ex["image"].shape == (584, 565, 3)
  assert set(np.unique(ex["mask"])) == {0, 1} and set(np.unique(ex["valid"])) == {0, 1}
  assert 0.05 < ex["mask"][ex["valid"] == 1].mean() < 0.25  # vessels ~12.5% of the FOV


def test_image_folder_reports_every_bad_file_at_once(tmp_path):
  bad = rf.write_bad_folder(tmp_path / "raw")
  with pytest.raises(DataError) as e:
    sources.load_source("image_folder", "train", tmp_path / "d", tmp_path / "raw")
  lines = str(e.value).splitlines()
  assert lines[0] == f"4 problems in {tmp_path / 'raw'}:"
  for name, problem in bad.items():
    (line,) = [l for l in lines[1:] if f"{name}.png" in l]
    assert problem in line
  assert not any("good" in line for line in lines)
  assert not list((tmp_path / "d").rglob("*.array_record*"))  # nothing was written


def test_lung_ct_2d_reports_bad_files_of_every_split(tmp_path):
  rf.write_lung(tmp_path / "raw", splits=(("train", 2), ("val", 2)))
  (tmp_path / "raw" / "train" / "images_256" / "ID_train_01.tif").write_bytes(b"garbage")
  rf.write_tif(str(tmp_path / "raw" / "val" / "masks_256" / "ID_val_00.tif"),
               np.zeros((3, 3), np.uint8))
  with pytest.raises(DataError, match=r"2 problems(.|\n)*ID_train_01(.|\n)*ID_val_00"):
    sources.load_source("lung_ct_2d", "train", tmp_path / "d", tmp_path / "raw")


def test_long_problem_lists_are_capped(tmp_path):
  for i in range(25):
    rf.write_pil(str(tmp_path / "images" / f"x{i:02d}.png"), np.zeros((2, 2), np.uint8))
  rf.write_pil(str(tmp_path / "masks" / "other.png"), np.zeros((2, 2), np.uint8))
  with pytest.raises(DataError) as e:
    pairing.pair_folder(str(tmp_path / "images"), str(tmp_path / "masks"))
  lines = str(e.value).splitlines()
  assert lines[0] == f"25 problems in {tmp_path / 'images'}:"
  assert len(lines) == 1 + 20 + 1 and lines[-1] == "  ... and 5 more"
  assert "x00.png" in lines[1] and "x19.png" in lines[20]


def test_preparation_is_logged_once_without_tfds_progress_output(tmp_path, caplog, capfd):
  with caplog.at_level(logging.INFO):
    sources.load_source("ct_phantom", "train", tmp_path, num_train=3, num_val=2, size=16)
    sources.load_source("ct_phantom", "val", tmp_path, num_train=3, num_val=2, size=16)
  messages = [r.getMessage() for r in caplog.records if r.pathname.endswith("datasets.py")]
  assert len(messages) == 2
  assert messages[0].startswith("preparing ct_phantom into ") and "(first run only)" in messages[0]
  assert messages[1].startswith("prepared 5 examples of ct_phantom in ")
  out, err = capfd.readouterr()
  assert "Downloading and preparing" not in out and "downloaded and prepared" not in out
  assert "\x1b[A" not in err and "Generating" not in err  # stderr here is not a TTY
