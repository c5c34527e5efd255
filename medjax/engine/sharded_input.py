"""Per-process reading of a global batch, independent of the process count.

A global batch of `shard_count * batch_size` consecutive elements is split into
contiguous row blocks, one per process, in process order: the same order in which
`jax.make_array_from_process_local_data` assembles the global array. So one
process with 8 devices and two processes with 4 each train on identical batches,
and each process reads (and preprocesses) only its own rows.
"""

from __future__ import annotations

import functools

import grain


def _global_index(j: int, batch_size: int, shard_index: int, shard_count: int) -> int:
  batch, row = divmod(j, batch_size)
  return (batch * shard_count + shard_index) * batch_size + row


def _fetch(j: int, ds, batch_size: int, shard_index: int, shard_count: int):
  return ds[_global_index(j, batch_size, shard_index, shard_count)]


def process_rows(ds: grain.MapDataset, batch_size: int, shard_index: int,
                 shard_count: int) -> grain.MapDataset:
  """This process's `batch_size` rows of every global batch of `ds`, in order.

  Batch the result with `.batch(batch_size)`; apply per-example work (decoding,
  augmentation) after this, so that it runs only on the rows this process owns.
  """
  if not 0 <= shard_index < shard_count:
    raise ValueError(f"shard_index {shard_index} is outside 0..{shard_count - 1}")
  if shard_count == 1:
    return ds
  length = len(ds) // (batch_size * shard_count) * batch_size
  fetch = functools.partial(_fetch, ds=ds, batch_size=batch_size, shard_index=shard_index,
                            shard_count=shard_count)
  return grain.MapDataset.range(length).map(fetch)
