"""Random-patch training batches: shapes, masks, determinism and exact resume."""

import numpy as np

from medjax.segmentation.volumes import pipeline, phantom


def _source(count=3, shape=(12, 14, 10)):
  out = []
  for i in range(count):
    image, label = phantom.phantom_case(i, shape)
    out.append({"image": image.array, "mask": label.array, "id": f"c{i}".encode(),
                "spacing": np.ones(3, np.float32), "grid": b"{}"})
  return out


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def test_patch_batches_have_the_patch_shape_and_a_mask():
  ds = pipeline.train_dataset(_source(), (8, 8, 8), num_classes=3, batch_size=2, seed=0,
                              foreground_fraction=1.0)
  batch = next(iter(ds))
  assert batch["image"].shape == (2, 8, 8, 8, 1) and batch["label"].shape == (2, 8, 8, 8)
  np.testing.assert_array_equal(batch["_mask"], np.ones(2))
  assert (batch["label"] > 0).any(axis=(1, 2, 3)).all()  # foreground-centred patches


def test_batches_are_seeded_and_resume_exactly():
  make = lambda seed: iter(pipeline.train_dataset(_source(), (8, 8, 8), 3, 2, seed))
  a, b = _take(make(0), 3), _take(make(0), 3)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["image"], y["image"])
  assert not np.array_equal(a[0]["image"], _take(make(1), 1)[0]["image"])
  it = make(0)
  _take(it, 2)
  state = it.get_state()
  expected = next(it)
  resumed = make(0)
  resumed.set_state(state)
  np.testing.assert_array_equal(next(resumed)["image"], expected["image"])


def test_two_processes_read_the_rows_of_one_process():
  single = next(iter(pipeline.train_dataset(_source(), (8, 8, 8), 3, 4, seed=0)))
  halves = [next(iter(pipeline.train_dataset(_source(), (8, 8, 8), 3, 2, seed=0,
                                             shard_index=i, shard_count=2)))
            for i in range(2)]
  np.testing.assert_array_equal(np.concatenate([h["image"] for h in halves]),
                                single["image"])


def test_cases_decode_ids_and_honour_the_limit():
  cases = list(pipeline.cases(_source(), limit=2))
  assert [c["id"] for c in cases] == ["c0", "c1"] and cases[0]["label"].dtype == np.int32
