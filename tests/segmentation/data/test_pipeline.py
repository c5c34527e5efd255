import functools
import math

import grain
import numpy as np
import orbax.checkpoint as ocp
import pytest

from medjax.segmentation.data import pipeline, sources


def toy_source(n=10, hw=(4, 5)):
  """Examples whose image is filled with their index, so batches reveal what they hold."""
  return [{"image": np.full(hw + (1,), i * 10 - 1000, np.int16),
           "mask": np.full(hw, i % 2, np.uint8), "valid": np.ones(hw, np.uint8),
           "id": f"ex{i}".encode()} for i in range(n)]


def indices(batch):
  """Example indices back from the windowed images: (i * 10 - 1000 + 1000) / 1400."""
  return [int(round(v * 140)) for v in batch["image"][:, 0, 0, 0]]


def test_hu_window_and_uint8_scaling():
  hu = np.array([-2000, -1000, -300, 400, 3000], np.int16)
  np.testing.assert_allclose(pipeline.hu_window(hu), [0, 0, 0.5, 1, 1], atol=1e-7)
  np.testing.assert_allclose(pipeline.hu_window(hu, -500, 500), [0, 0, 0.2, 0.9, 1], atol=1e-7)
  rgb = np.array([[[0, 51, 255]]], np.uint8)
  np.testing.assert_allclose(pipeline.scale_uint8(rgb), [[[0, 0.2, 1]]])
  green = pipeline.uint8_preprocess({"image": rgb, "mask": np.zeros((1, 1), np.uint8),
                                     "valid": np.ones((1, 1), np.uint8)}, channels=(1,))
  assert green["image"].shape == (1, 1, 1) and green["image"].dtype == np.float32
  np.testing.assert_allclose(green["image"], 0.2)
  assert green["label"].dtype == np.int32 and green["valid"].dtype == np.float32


def test_train_batches_shapes_and_epochs():
  ds = pipeline.train_dataset(toy_source(), pipeline.ct_preprocess, batch_size=4, seed=0)
  it = iter(ds)
  batches = [next(it) for _ in range(5)]  # 20 examples: two epochs
  b = batches[0]
  assert b["image"].shape == (4, 4, 5, 1) and b["image"].dtype == np.float32
  assert b["label"].shape == (4, 4, 5) and b["label"].dtype == np.int32
  assert b["valid"].shape == (4, 4, 5) and b["valid"].dtype == np.float32
  np.testing.assert_array_equal(b["_mask"], np.ones(4, np.float32))
  seen = sum((indices(b) for b in batches), [])
  assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
  assert seen[:10] != seen[10:]  # reshuffled each epoch
  for b in batches:  # labels follow their images
    np.testing.assert_array_equal(b["label"][:, 0, 0], np.array(indices(b)) % 2)


def test_process_rows_make_up_the_one_process_batches():
  one = iter(pipeline.train_dataset(toy_source(), pipeline.ct_preprocess, 3, 0))
  shards = [iter(pipeline.train_dataset(toy_source(), pipeline.ct_preprocess, 1, 0, k, 3))
            for k in range(3)]
  for _ in range(7):  # two epochs and a bit
    rows = [indices(next(it))[0] for it in shards]
    assert rows == indices(next(one))


def test_iterator_state_resumes_exactly():
  ds = pipeline.train_dataset(toy_source(), pipeline.ct_preprocess, 3, seed=1)
  it = iter(ds)
  for _ in range(5):
    next(it)
  state = it.get_state()
  expected = [next(it) for _ in range(3)]
  fresh = iter(ds)
  fresh.set_state(state)
  for want in expected:
    got = next(fresh)
    for k in want:
      np.testing.assert_array_equal(got[k], want[k])


def test_iterator_state_through_orbax_checkpoint_manager(tmp_path):
  ds = pipeline.train_dataset(toy_source(), pipeline.ct_preprocess, 2, seed=3)
  it = iter(ds)
  for _ in range(4):
    next(it)
  state = {"w": np.arange(3.0)}
  with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
    manager.save(4, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                            data=grain.checkpoint.CheckpointSave(it)))
    manager.wait_until_finished()
  expected = [indices(next(it)) for _ in range(3)]
  fresh = iter(ds)
  with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
    restored = manager.restore(4, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(state), data=grain.checkpoint.CheckpointRestore(fresh)))
  np.testing.assert_array_equal(restored["state"]["w"], state["w"])
  assert [indices(next(fresh)) for _ in range(3)] == expected


@pytest.mark.parametrize("n,batch,shards", [(10, 4, 1), (10, 3, 3), (8, 4, 1), (2, 4, 3)])
def test_eval_batches_visit_each_example_once(n, batch, shards):
  source = toy_source(n)
  per_shard = []
  for shard in range(shards):
    batches = list(pipeline.eval_batches(source, pipeline.ct_preprocess, batch, shard, shards))
    per_shard.append(len(batches))
    real = []
    for b in batches:
      assert b["image"].shape == (batch, 4, 5, 1) and b["_mask"].shape == (batch,)
      keep = b["_mask"] == 1
      real += [int(i[2:]) for i in b["id"][keep]]
      assert list(b["id"][~keep]) == [""] * int((~keep).sum())
      np.testing.assert_array_equal(b["image"][~keep], 0)
      np.testing.assert_array_equal(b["valid"][~keep], 0)
      np.testing.assert_array_equal(b["label"][keep][:, 0, 0], np.array(indices(b))[keep] % 2)
      np.testing.assert_array_equal(b["_mask"], np.sort(b["_mask"])[::-1])  # padding last
    assert real == list(range(shard, n, shards))
  expected_batches = math.ceil(math.ceil(n / shards) / batch)
  assert per_shard == [expected_batches] * shards  # every process runs the same steps


def test_pipeline_on_a_tfds_source(tmp_path):
  src = sources.load_source("ct_phantom", "val", tmp_path, num_train=1, num_val=3, size=16)
  preprocess = functools.partial(pipeline.ct_preprocess, low=-1100.0, high=500.0)
  batch = next(iter(pipeline.train_dataset(src, preprocess, 2, seed=0)))
  assert batch["image"].shape == (2, 16, 16, 1) and 0 <= batch["image"].min() <= 1
  ev = list(pipeline.eval_batches(src, preprocess, 2))
  assert len(ev) == 2 and sorted(ev[0]["id"].tolist() + ev[1]["id"].tolist()) == [
      "", "phantom_val_00000", "phantom_val_00001", "phantom_val_00002"]
