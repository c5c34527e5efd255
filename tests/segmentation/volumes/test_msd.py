import json
import os

import nibabel as nib
import numpy as np
import pytest

from medjax.segmentation.data.errors import DataError
from medjax.segmentation.volumes import msd

SHARED = os.environ.get("MEDJAX_SHARED_DATA", "")
HIPPOCAMPUS = os.path.join(SHARED, "msd_hippocampus")
SHAPE = (4, 5, 3)
AFFINE = np.diag([1.5, 1.5, 3.0, 1.0])
AFFINE[:3, 3] = [-3.0, 2.0, 10.0]


def save(path, array, affine=AFFINE):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  nib.save(nib.Nifti1Image(array, affine), str(path))
  return str(path)


def label_map(values, seed=0):
  return np.random.default_rng(seed).choice(values, size=SHAPE).astype(np.uint8)


def image(seed=0, channels=None):
  shape = SHAPE if channels is None else (*SHAPE, channels)
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def plain_folder(root):
  """imagesTr/labelsTr only, plus a macOS resource fork that must be ignored."""
  labels = {"b": label_map([0, 1], 1), "a": label_map([0, 1, 2], 2)}
  for case, lab in labels.items():
    save(root / "imagesTr" / f"{case}.nii.gz", image(ord(case)))
    save(root / "labelsTr" / f"{case}.nii.gz", lab)
  (root / "imagesTr" / "._a.nii.gz").write_bytes(b"\0\5\26\7 mac resource fork")
  (root / "labelsTr" / "._a.nii.gz").write_bytes(b"\0\5\26\7 mac resource fork")
  return labels


def test_folder_without_json_pairs_by_name_and_scans_labels(tmp_path):
  labels = plain_folder(tmp_path)
  folder = msd.MsdFolder(tmp_path)
  cases = folder.cases()
  assert [c.id for c in cases] == ["a", "b"]
  assert cases[0].images == (str(tmp_path / "imagesTr" / "a.nii.gz"),)
  assert cases[0].label == str(tmp_path / "labelsTr" / "a.nii.gz")
  assert folder.labels == {0: "background", 1: "class_1", 2: "class_2"}
  assert folder.channels == ["image"] and folder.cases("test") == []
  img, lab = msd.load_case(cases[0], folder.labels)
  assert img.array.shape == (*SHAPE, 1) and lab.array.shape == SHAPE
  np.testing.assert_array_equal(img.array[..., 0], image(ord("a")))
  np.testing.assert_array_equal(lab.array, labels["a"])


def test_labels_argument_overrides_the_scan(tmp_path):
  plain_folder(tmp_path)
  folder = msd.MsdFolder(tmp_path, labels={0: "bg", 1: "head", 2: "tail"})
  assert folder.labels == {0: "bg", 1: "head", 2: "tail"}
  assert msd.MsdFolder(tmp_path, labels=[0, 1, 2]).labels == {
      0: "class_0", 1: "class_1", 2: "class_2"}


def test_msd_dataset_json_with_4d_images_and_test_split(tmp_path):
  save(tmp_path / "imagesTr" / "brats_1.nii.gz", image(1, channels=2))
  save(tmp_path / "labelsTr" / "brats_1.nii.gz", label_map([0, 1, 3]))
  save(tmp_path / "imagesTr" / "unlisted.nii.gz", image(9, channels=2))  # not in json: ignored
  save(tmp_path / "imagesTs" / "brats_9.nii.gz", image(2, channels=2))
  (tmp_path / "dataset.json").write_text(json.dumps({
      "name": "BRATS", "modality": {"0": "FLAIR", "1": "T1w"},
      "labels": {"0": "background", "1": "edema", "3": "enhancing"},
      "training": [{"image": "./imagesTr/brats_1.nii.gz", "label": "./labelsTr/brats_1.nii.gz"}],
      "test": ["./imagesTs/brats_9.nii.gz"]}))
  folder = msd.MsdFolder(tmp_path)
  assert folder.labels == {0: "background", 1: "edema", 3: "enhancing"}
  assert folder.channels == ["FLAIR", "T1w"]
  assert [c.id for c in folder.cases()] == ["brats_1"]
  (test_case,) = folder.cases("test")
  assert test_case.id == "brats_9" and test_case.label is None
  img, lab = msd.load_case(test_case, folder.labels)
  assert lab is None and img.array.shape == (*SHAPE, 2)
  img, lab = msd.load_case(folder.cases()[0], folder.labels)
  np.testing.assert_array_equal(img.array, image(1, channels=2))


def test_nnunet_channel_files_form_one_case(tmp_path):
  for case in ("liver_1", "liver_2"):
    for c in range(2):
      save(tmp_path / "imagesTr" / f"{case}_{c:04d}.nii.gz", image(10 * c + len(case)))
    save(tmp_path / "labelsTr" / f"{case}.nii.gz", label_map([0, 1]))
  save(tmp_path / "imagesTs" / "liver_7_0000.nii.gz", image(3))
  save(tmp_path / "imagesTs" / "liver_7_0001.nii.gz", image(4))
  (tmp_path / "dataset.json").write_text(json.dumps({
      "channel_names": {"0": "CT", "1": "PET"}, "labels": {"background": 0, "liver": 1},
      "numTraining": 2, "file_ending": ".nii.gz"}))
  folder = msd.MsdFolder(tmp_path)
  assert folder.labels == {0: "background", 1: "liver"} and folder.channels == ["CT", "PET"]
  cases = folder.cases()
  assert [c.id for c in cases] == ["liver_1", "liver_2"] and len(cases[0].images) == 2
  img, _ = msd.load_case(cases[0], folder.labels)
  np.testing.assert_array_equal(img.array, np.stack([image(7), image(17)], axis=-1))
  (test_case,) = folder.cases("test")
  assert test_case.id == "liver_7" and len(test_case.images) == 2


def test_nnunet_dataset_key_lists_the_files(tmp_path):
  save(tmp_path / "raw" / "s1_ct.nii.gz", image(1))
  save(tmp_path / "raw" / "s1_pet.nii.gz", image(2))
  save(tmp_path / "raw" / "s1_seg.nii.gz", label_map([0, 1]))
  (tmp_path / "dataset.json").write_text(json.dumps({
      "labels": {"background": 0, "lesion": 1}, "channel_names": {"0": "CT", "1": "PET"},
      "dataset": {"s1": {"images": ["raw/s1_ct.nii.gz", "raw/s1_pet.nii.gz"],
                         "label": "raw/s1_seg.nii.gz"}}}))
  folder = msd.MsdFolder(tmp_path)
  (case,) = folder.cases()
  assert case.id == "s1" and case.label == str(tmp_path / "raw" / "s1_seg.nii.gz")
  img, _ = msd.load_case(case, folder.labels, channels=len(folder.channels))
  np.testing.assert_array_equal(img.array, np.stack([image(1), image(2)], axis=-1))
  with pytest.raises(DataError, match=r"s1_ct\.nii\.gz, .*s1_pet\.nii\.gz has 2 channels; "
                     r"the dataset has 3"):
    msd.load_case(case, folder.labels, channels=3)


def test_channel_files_on_different_grids_are_refused(tmp_path):
  save(tmp_path / "imagesTr" / "c_0000.nii.gz", image(0))
  shifted = AFFINE.copy()
  shifted[0, 3] += 2.0
  save(tmp_path / "imagesTr" / "c_0001.nii.gz", image(1), shifted)
  save(tmp_path / "labelsTr" / "c.nii.gz", label_map([0, 1]))
  (case,) = msd.MsdFolder(tmp_path).cases()
  with pytest.raises(DataError, match=r"c_0001\.nii\.gz is not on the grid of image .*c_0000"):
    msd.load_case(case, {0: "bg", 1: "fg"})


def test_unpaired_files_are_all_named(tmp_path):
  save(tmp_path / "imagesTr" / "a.nii.gz", image())
  save(tmp_path / "imagesTr" / "lonely.nii.gz", image())
  save(tmp_path / "labelsTr" / "a.nii.gz", label_map([0, 1]))
  save(tmp_path / "labelsTr" / "orphan.nii.gz", label_map([0, 1]))
  with pytest.raises(DataError, match="2 problems") as err:
    msd.MsdFolder(tmp_path)
  assert "image" in str(err.value) and "lonely.nii.gz has no label" in str(err.value)
  assert "label" in str(err.value) and "orphan.nii.gz has no image" in str(err.value)


def test_missing_listed_file_is_named(tmp_path):
  save(tmp_path / "imagesTr" / "a.nii.gz", image())
  (tmp_path / "dataset.json").write_text(json.dumps({
      "labels": {"0": "background"},
      "training": [{"image": "./imagesTr/a.nii.gz", "label": "./labelsTr/a.nii.gz"}]}))
  with pytest.raises(DataError, match=r"labelsTr/a\.nii\.gz \(listed in \"training\"\) does not"):
    msd.MsdFolder(tmp_path)


def _one_case(root, label, label_affine=AFFINE):
  save(root / "imagesTr" / "x.nii.gz", image())
  save(root / "labelsTr" / "x.nii.gz", label, label_affine)
  return msd.MsdFolder(root, labels={0: "background", 1: "organ"}).cases()[0]


def test_label_on_another_shape_names_both_files(tmp_path):
  case = _one_case(tmp_path, np.zeros((4, 5, 2), np.uint8))
  with pytest.raises(DataError, match=r"labelsTr/x\.nii\.gz has shape \(4, 5, 2\) but image "
                     r".*imagesTr/x\.nii\.gz has shape \(4, 5, 3\)"):
    msd.load_case(case, {0: "background", 1: "organ"})


@pytest.mark.parametrize("shift, ok", [(1e-5, True), (0.5, False)])
def test_label_affine_must_match_within_a_micron(tmp_path, shift, ok):
  moved = AFFINE.copy()
  moved[2, 3] += shift
  case = _one_case(tmp_path, label_map([0, 1]), moved)
  if ok:
    assert msd.load_case(case, {0: "background", 1: "organ"})[1].shape == SHAPE
  else:
    with pytest.raises(DataError, match=r"labelsTr/x\.nii\.gz is not on the grid of image "
                       r".*imagesTr/x\.nii\.gz \(corners up to 0\.5 mm"):
      msd.load_case(case, {0: "background", 1: "organ"})


def test_label_value_outside_the_classes_is_named(tmp_path):
  case = _one_case(tmp_path, label_map([0, 1, 4]))
  with pytest.raises(DataError, match=r"labelsTr/x\.nii\.gz holds values \[4\] that are not "
                     r"classes \[0, 1\]"):
    msd.load_case(case, {0: "background", 1: "organ"})


def test_corrupt_label_found_by_the_scan_is_named(tmp_path):
  save(tmp_path / "imagesTr" / "x.nii.gz", image())
  (tmp_path / "labelsTr").mkdir()
  (tmp_path / "labelsTr" / "x.nii.gz").write_bytes(b"")
  folder = msd.MsdFolder(tmp_path)
  with pytest.raises(DataError, match=r"empty.*labelsTr/x\.nii\.gz"):
    folder.labels  # noqa: B018 -- the scan reads every label file


def test_bad_labels_in_dataset_json(tmp_path):
  plain_folder(tmp_path)
  (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"tumour": [1, 2]}}))
  with pytest.raises(DataError, match="region-based"):
    msd.MsdFolder(tmp_path).labels  # noqa: B018
  (tmp_path / "dataset.json").write_text("{not json")
  with pytest.raises(DataError, match="dataset.json"):
    msd.MsdFolder(tmp_path)


@pytest.mark.skipif(not os.path.isdir(HIPPOCAMPUS), reason="no msd_hippocampus in shared data")
def test_shared_hippocampus_folder():
  folder = msd.MsdFolder(HIPPOCAMPUS)
  cases = folder.cases()
  assert len(cases) == 208 and cases[0].id == "hippocampus_001"
  assert folder.labels == {0: "background", 1: "class_1", 2: "class_2"}
  img, lab = msd.load_case(cases[0], folder.labels)
  assert img.array.shape == (35, 51, 35, 1) and lab.array.shape == (35, 51, 35)
  assert set(np.unique(lab.array).tolist()) == {0, 1, 2}
