"""The shared chest X-ray folder (slow) and AdrenalMNIST3D file (skipped when absent)."""

import os

import numpy as np
import pytest

from medjax.classification.data import sources, splits

_SHARED = os.environ.get("MEDJAX_SHARED_DATA", "")
PNEUMONIA = os.path.join(_SHARED, "chest_xray_pneumonia_224")
ADRENAL = os.path.join(_SHARED, "adrenalmnist3d", "adrenalmnist3d_trainval.npz")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(PNEUMONIA), reason="shared chest X-rays absent")
def test_pneumonia_folder_validation_is_grouped_by_patient(tmp_path):
  builder = sources.prepared("image_folder", tmp_path, PNEUMONIA, size=(224, 224),
                             val_fraction=0.1)
  info = sources.info_of(builder)
  counts = np.add(info.label_counts["train"], info.label_counts["val"])
  np.testing.assert_array_equal(counts, [1341, 3875])  # the README's official counts
  assert info.image_shape == (224, 224, 1)
  groups = builder.info.metadata["groups"]
  assert set(groups["train"]).isdisjoint(groups["val"])
  val = sum(info.label_counts["val"])
  assert 0.1 * 5216 <= val < 0.11 * 5216
  # The manifest's patient_prefix agrees with the group pattern on every file.
  import csv  # pylint: disable=import-outside-toplevel
  with open(os.path.join(PNEUMONIA, "manifest.csv"), encoding="utf-8") as f:
    for row in csv.DictReader(f):
      assert splits.group_of(os.path.basename(row["path"])) == row["patient_prefix"]


@pytest.mark.skipif(not os.path.isfile(ADRENAL), reason="shared AdrenalMNIST3D absent")
def test_adrenal_npz_keeps_the_official_split(tmp_path):
  builder = sources.prepared("medmnist", tmp_path, ADRENAL, spatial_dims=3,
                             classes=("normal", "mass"))
  info = sources.info_of(builder)
  assert info.label_counts == {"train": [929, 259], "val": [76, 22]}  # the README's counts
  assert info.image_shape == (28, 28, 28, 1)
  source = sources.source_of(builder, "val")
  with np.load(ADRENAL) as data:
    images = data["val_images"]
  example = source[0]
  index = int(example["id"].decode().split("_")[-1])
  np.testing.assert_array_equal(example["image"][..., 0], images[index])
