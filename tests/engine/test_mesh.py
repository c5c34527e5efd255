"""Batch transfer: `shard_batch` (one device_put in a single process)."""

import jax
import numpy as np

from medjax.engine import mesh as mesh_lib


def test_shard_batch_keeps_values_dtypes_and_the_batch_sharding():
  mesh = mesh_lib.make_mesh({"data": -1})
  rows = mesh_lib.batch_divisor(mesh)
  batch = {"x": np.arange(rows * 6, dtype=np.float32).reshape(rows, 2, 3),
           "i": np.arange(rows, dtype=np.int32), "name": np.array(["a"] * rows)}
  out = mesh_lib.shard_batch(batch, mesh)
  assert sorted(out) == ["i", "x"]  # strings are not sent to the device
  reference = {k: jax.make_array_from_process_local_data(mesh_lib.batch_sharding(mesh), v)
               for k, v in batch.items() if k != "name"}
  for key, value in out.items():
    assert value.sharding == mesh_lib.batch_sharding(mesh)
    assert value.dtype == batch[key].dtype and value.shape == batch[key].shape
    np.testing.assert_array_equal(np.asarray(value), np.asarray(reference[key]))
