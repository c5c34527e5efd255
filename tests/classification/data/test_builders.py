"""Classification builders: image folders, MedMNIST .npz, label CSVs, and their errors."""

import os

import numpy as np
import pytest
from PIL import Image

from medjax.classification.data import labels as labels_lib
from medjax.classification.data import sources, splits
from medjax.segmentation.data.errors import DataError
from tests.classification.data import fixtures


def _load(name, tmp_path, raw_dir=None, **kwargs):
  builder = sources.prepared(name, tmp_path / "prepared", raw_dir, **kwargs)
  return builder, {s: sources.source_of(builder, s) for s in builder.info.splits}


def _by_id(source):
  return {(e := source[i])["id"].decode(): e for i in range(len(source))}


def test_image_folder_keeps_pixels_classes_and_patients_apart(tmp_path):
  written = fixtures.write_image_folder(tmp_path / "raw")
  builder, split = _load("image_folder", tmp_path, tmp_path / "raw", val_fraction=0.3)
  info = sources.info_of(builder)
  assert info.classes == ("NORMAL", "PNEUMONIA") and not info.multi_label
  examples = {**_by_id(split["train"]), **_by_id(split["val"])}
  assert len(examples) == len(written) == 8
  for rel, image in written.items():
    _, cls, name = rel.split("/")
    example = examples[f"{cls}/{os.path.splitext(name)[0]}"]
    np.testing.assert_array_equal(example["image"][..., 0], image)
    assert example["label"] == info.classes.index(cls)
  patients = {s: {splits.group_of(i.split("/")[1]) for i in _by_id(split[s])}
              for s in ("train", "val")}
  assert patients["train"].isdisjoint(patients["val"]) and patients["val"]
  assert sum(info.label_counts["train"]) + sum(info.label_counts["val"]) == 8


def test_group_pattern_of_kermany_names():
  assert splits.group_of("person12_bacteria_45.jpeg") == "person12"
  assert splits.group_of("NORMAL2-IM-0383-0001.jpeg") == "NORMAL2-IM-0383"
  assert splits.group_of("IM-0115-0001.jpeg") == "IM-0115"
  assert splits.group_of("train/patient00042/study1/view1.jpg") == "patient00042"
  assert splits.group_of("scan_7.png") == "scan_7"


def test_grouped_val_mask_takes_whole_groups():
  groups = ["a", "a", "b", "c", "c", "c", "d"]
  mask = splits.grouped_val_mask(groups, 0.3, seed=1)
  assert mask.sum() >= 0.3 * len(groups)
  for g in set(groups):
    assert len({mask[i] for i, h in enumerate(groups) if h == g}) == 1
  np.testing.assert_array_equal(mask, splits.grouped_val_mask(groups, 0.3, seed=1))


def test_image_folder_resizes_and_converts_rgb_to_grey(tmp_path):
  rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
  for cls in ("a", "b"):
    os.makedirs(tmp_path / "raw" / "train" / cls)
    Image.fromarray(rgb).save(tmp_path / "raw" / "train" / cls / "x.png")
  _, split = _load("image_folder", tmp_path, tmp_path / "raw", size=(4, 5), val_fraction=0.0)
  expected = np.asarray(Image.fromarray(rgb).resize((5, 4), Image.Resampling.BILINEAR)
                        .convert("L"))
  np.testing.assert_array_equal(split["train"][0]["image"][..., 0], expected)


def test_image_folder_names_unknown_class_and_unreadable_file(tmp_path):
  fixtures.write_image_folder(tmp_path / "raw", {
      "train": {"NORMAL": ("a.png",), "PNEUMONIA": ("b.png",)},
      "val": {"NORMAL": ("c.png",), "COVID": ("d.png",)}})
  bad = tmp_path / "raw" / "train" / "NORMAL" / "broken.png"
  bad.write_bytes(b"not a png")
  with pytest.raises(DataError) as e:
    _load("image_folder", tmp_path, tmp_path / "raw")
  message = str(e.value)
  assert "2 problems" in message and str(bad) in message
  assert "unknown class folder" in message and os.path.join("val", "COVID") in message


def test_image_folder_without_train_folder(tmp_path):
  os.makedirs(tmp_path / "raw" / "NORMAL")
  with pytest.raises(DataError, match="no train/ folder"):
    _load("image_folder", tmp_path, tmp_path / "raw")


@pytest.mark.parametrize("spatial", [(4, 5), (3, 4, 5)])
def test_medmnist_npz_2d_and_3d(tmp_path, spatial):
  arrays = fixtures.write_npz(tmp_path / "m.npz", spatial=spatial, num_classes=3)
  builder, split = _load("medmnist", tmp_path, tmp_path / "m.npz", spatial_dims=len(spatial))
  info = sources.info_of(builder)
  assert info.classes == ("0", "1", "2") and info.image_shape == (*spatial, 1)
  for s in ("train", "val"):
    examples = _by_id(split[s])
    assert len(examples) == len(arrays[f"{s}_images"])
    for ident, example in examples.items():
      i = int(ident.split("_")[-1])
      np.testing.assert_array_equal(example["image"][..., 0], arrays[f"{s}_images"][i])
      assert example["label"] == arrays[f"{s}_labels"][i, 0]


def test_medmnist_multi_label_and_missing_val(tmp_path):
  arrays = fixtures.write_npz(tmp_path / "m.npz", counts=(("train", 10),), num_findings=3)
  builder, split = _load("medmnist", tmp_path, tmp_path / "m.npz", val_fraction=0.2)
  assert sources.info_of(builder).multi_label
  assert len(split["train"]) == 8 and len(split["val"]) == 2
  rows = {tuple(r) for r in arrays["train_labels"].astype(np.int8).tolist()}
  assert all(tuple(split["val"][i]["labels"].tolist()) in rows for i in range(2))


def test_medmnist_names_missing_key(tmp_path):
  fixtures.write_npz(tmp_path / "m.npz", counts=(("val", 3),))
  with pytest.raises(DataError, match=r"m\.npz has no train_images / train_labels"):
    _load("medmnist", tmp_path, tmp_path / "m.npz")
  np.savez(tmp_path / "half.npz", train_images=np.zeros((2, 4, 4), np.uint8))
  with pytest.raises(DataError, match=r"half\.npz has train_images but no train_labels"):
    _load("medmnist", tmp_path, tmp_path / "half.npz")


def test_medmnist_3d_file_read_as_2d_says_so(tmp_path):
  fixtures.write_npz(tmp_path / "m.npz", spatial=(6, 6, 6))
  with pytest.raises(DataError, match="spatial_dims=3"):
    _load("medmnist", tmp_path, tmp_path / "m.npz", spatial_dims=2)


def test_csv_codes_and_policies(tmp_path):
  rows = [("train/patient1/a.png", "1", "-1"), ("train/patient1/b.png", "0.0", ""),
          ("train/patient2/c.png", "-1.0", "1"), ("train/patient3/d.png", "", "0")]
  csv_path = fixtures.write_csv(tmp_path / "raw", rows)
  builder, split = _load("csv", tmp_path, csv_path, label_columns=("Atelectasis", "Edema"),
                         size=(8, 8), val_fraction=0.0)
  codes = {e["id"].decode(): e["labels"].tolist() for e in _by_id(split["train"]).values()}
  assert codes["train/patient1/a.png"] == [1, -1] and codes["train/patient1/b.png"] == [0, -2]
  assert sources.info_of(builder).label_counts["train"]["uncertain"] == [1, 1]
  codes = np.array([[1, -1], [0, -2]])
  for policy, targets, mask in (("ones", [[1, 1], [0, 0]], [[1, 1], [1, 0]]),
                                ("zeros", [[1, 0], [0, 0]], [[1, 1], [1, 0]]),
                                ("ignore", [[1, 0], [0, 0]], [[1, 0], [1, 0]])):
    t, m = labels_lib.apply_policy(codes, policy)
    np.testing.assert_array_equal(t, targets)
    np.testing.assert_array_equal(m, mask)


def test_csv_names_bad_cell_and_missing_column(tmp_path):
  csv_path = fixtures.write_csv(tmp_path / "raw", [("a.png", "1", "0"), ("b.png", "yes", "2")])
  with pytest.raises(DataError) as e:  # columns as a flag gives them: one string
    _load("csv", tmp_path, csv_path, label_columns="Atelectasis,Edema")
  assert f"{csv_path}:3: column 'Atelectasis' has 'yes'" in str(e.value)
  assert "column 'Edema' has '2'" in str(e.value)
  with pytest.raises(DataError, match=r"labels\.csv has no column 'Cardiomegaly'"):
    _load("csv", tmp_path, csv_path, label_columns=("Cardiomegaly",))


def test_csv_nih_findings_column(tmp_path):
  rows = [("x1.png", "Edema|Atelectasis", "p1"), ("x2.png", "No Finding", "p2"),
          ("x3.png", "Edema", "p3")]
  csv_path = fixtures.write_csv(tmp_path / "raw", rows,
                                header=("Image Index", "Finding Labels", "Patient ID"))
  _, split = _load("csv", tmp_path, csv_path, label_columns=("Atelectasis", "Edema"),
                   path_column="Image Index", findings_column="Finding Labels",
                   group_column="Patient ID", size=(8, 8), val_fraction=0.0)
  codes = {e["id"].decode(): e["labels"].tolist() for e in _by_id(split["train"]).values()}
  assert codes == {"x1.png": [1, 1], "x2.png": [0, 0], "x3.png": [0, 1]}


def test_unknown_dataset_and_option(tmp_path):
  with pytest.raises(DataError, match="unknown 'nope'"):
    sources.make_builder("nope", tmp_path)
  with pytest.raises(DataError, match="config.task.builder"):
    sources.make_builder("shapes", tmp_path, colour=3)
