"""Volume builders: fixed splits, preprocessing, metadata, and the inverse to the file grid."""

import numpy as np
import pytest

from medjax.segmentation.data import sources
from medjax.segmentation.data.errors import DataError
from medjax.segmentation.volumes import builder, geometry, phantom
from tests.segmentation.volumes import raw_volumes


def test_split_ids_is_a_fixed_seeded_partition():
  ids = [f"case_{i:03d}" for i in range(20)]
  train, val = builder.split_ids(reversed(ids), 0.2, seed=3)
  assert len(val) == 4 and sorted(train + val) == ids and not set(train) & set(val)
  assert builder.split_ids(ids, 0.2, seed=3) == (train, val)  # input order does not matter
  assert builder.split_ids(ids, 0.2, seed=4)[1] != val
  assert builder.split_ids(ids[:2], 0.01, seed=0)[1]  # at least one val case
  with pytest.raises(DataError, match="val_fraction"):
    builder.split_ids(ids, 1.0, seed=0)


def _phantom_source(tmp_path, split, **kwargs):
  options = dict(num_cases=3, shape=(16, 20, 12), val_fraction=0.34)
  options.update(kwargs)
  return sources.load_source("volume_phantom", split, data_dir=tmp_path, **options)


def test_phantom_volumes_map_back_onto_the_generated_grid(tmp_path):
  train, val = _phantom_source(tmp_path, "train"), _phantom_source(tmp_path, "val")
  assert len(train) == 2 and len(val) == 1
  example = train[0]
  case_id = example["id"].decode()
  assert example["image"].ndim == 4 and example["image"].dtype == np.float32
  np.testing.assert_allclose(example["spacing"], phantom.SPACING)
  image, label = phantom.phantom_case(int(case_id.split("_")[1]), (16, 20, 12))
  record = geometry.GridRecord.from_json(example["grid"].decode())
  np.testing.assert_array_equal(geometry.inverse(example["mask"], record), label.array)
  inside = example["image"][..., 0][example["mask"] > 0]
  assert abs(inside.mean()) < 3  # z-scored


def _msd_folder(root, cases=3):
  raw_volumes.write_msd(root, cases, modality="CT", offset=-1000.0, scale=10.0)


def test_msd_folder_with_ct_statistics_in_the_metadata(tmp_path):
  raw = tmp_path / "raw"
  _msd_folder(raw)
  kwargs = dict(data_dir=tmp_path / "data", raw_dir=raw, normalisation="ct",
                val_fraction=0.34)
  train = sources.load_source("msd", "train", **kwargs)
  metadata = sources.make_builder("msd", **kwargs).info.metadata
  assert sorted(metadata["train_ids"] + metadata["val_ids"]) == [
      "case_000", "case_001", "case_002"]
  stats = metadata["intensity_stats"]
  low, mean, high = (np.ravel(stats[k])[0] for k in
                     ("percentile_00_5", "mean", "percentile_99_5"))
  assert low < mean < high
  assert set(np.unique(train[0]["mask"])) <= {0, 1, 2}


def test_a_label_outside_the_classes_stops_preparation_naming_the_file(tmp_path):
  raw = tmp_path / "raw"
  _msd_folder(raw, cases=2)
  image, label = phantom.phantom_case(5, (12, 14, 10))
  bad = label.array.copy()
  bad[0, 0, 0] = 7
  raw_volumes.write_case(raw, "case_bad.nii.gz", image.array[..., 0], bad, image.affine)
  with pytest.raises(DataError, match="case_bad"):
    sources.load_source("msd", "train", data_dir=tmp_path / "data", raw_dir=raw)
