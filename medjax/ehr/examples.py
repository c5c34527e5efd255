"""Per-sample model inputs (numpy dicts) and their collation into padded batches.

Three input kinds:
* `binned`: `values`, `mask`, `delta` (T, V) and `static` (F,) -- GRU / LSTM / GRU-D;
* `tokens`: one token per observation time: `values`, `mask` (L, V), `times` (L,),
  `token_mask` (L,) and `static` -- Transformer;
* `codes`: `codes` (visits, codes), `visit_mask`, `visit_times` (visits,) -- RETAIN.
Every example also has `label` and `_mask` (1: real example). `collate` pads the
variable-length axes to the batch maximum rounded up to a multiple (`pad_multiple`), so
only a few shapes reach the compiler; padding is zeros (masks 0, code id 0).
"""

from __future__ import annotations

import numpy as np

from medjax.ehr import binning, codes as codes_lib
from medjax.ehr.codes import CodeData
from medjax.ehr.data import IcuData
from medjax.ehr.normalise import Normaliser

KINDS = ("binned", "tokens", "codes")


class Examples:
  """A sequence of example dicts, from stacked arrays (fixed shapes) or a list."""

  def __init__(self, ids, arrays: dict | None = None, items: list | None = None):
    self.ids = np.asarray(ids)
    self._arrays, self._items = arrays, items

  def __len__(self) -> int:
    return len(self.ids)

  def __getitem__(self, i) -> dict[str, np.ndarray]:
    i = int(i)
    if self._items is not None:
      return self._items[i]
    return {k: v[i] for k, v in self._arrays.items()}


def _common(labels) -> dict[str, np.ndarray]:
  return {"label": np.asarray(labels, np.float32),
          "_mask": np.ones(len(labels), np.float32)}


def binned_examples(data: IcuData, normaliser: Normaliser, num_bins: int = 48,
                    bin_hours: float = 1.0) -> Examples:
  raw = binning.bin_set(data, num_bins, bin_hours)
  mask = ~np.isnan(raw)
  arrays = {
      "values": np.nan_to_num(normaliser.series(raw)),
      "mask": mask.astype(np.float32),
      "delta": binning.time_since_last(mask, bin_hours),
      "static": normaliser.static_features(data.static),
      **_common(data.labels)}
  return Examples(data.ids, arrays=arrays)


def token_examples(data: IcuData, normaliser: Normaliser, max_hours: float = 48.0
                   ) -> Examples:
  static = normaliser.static_features(data.static)
  common = _common(data.labels)
  items = []
  for i in range(len(data)):
    times, var, values = data.events(i)
    token_times, grid = binning.tokens(times, var, values, len(data.variables), max_hours)
    if not len(token_times):  # a stay without series: one empty, masked-out token
      token_times, grid = np.zeros(1, np.float32), np.full((1, grid.shape[1]), np.nan)
    observed = ~np.isnan(grid)
    items.append({
        "values": np.nan_to_num(normaliser.series(grid)), "mask": observed.astype(np.float32),
        "times": token_times, "token_mask": observed.any(-1).astype(np.float32),
        "static": static[i], **{k: v[i] for k, v in common.items()}})
  return Examples(data.ids, items=items)


def code_examples(data: CodeData, vocab: dict[str, int], max_codes: int = 256
                  ) -> Examples:
  common = _common(data.labels)
  items = []
  for i in range(len(data)):
    ids = codes_lib.encode(data.visits[i], vocab, max_codes)
    items.append({"codes": ids, "visit_mask": np.ones(len(ids), np.float32),
                  "visit_times": np.asarray(data.visit_times[i], np.float32),
                  **{k: v[i] for k, v in common.items()}})
  return Examples(data.ids, items=items)


def _round_up(n: int, multiple: int) -> int:
  return max(multiple, -(-n // multiple) * multiple)


# Axes that vary between examples, per key (tokens and codes kinds).
SEQUENCE_AXES = {"values": (0,), "mask": (0,), "times": (0,), "token_mask": (0,),
                 "codes": (0, 1), "visit_mask": (0,), "visit_times": (0,)}
# Visits are few: their axis is padded to a multiple 8x smaller than tokens and codes.
VISIT_KEYS = ("codes", "visit_mask", "visit_times")


def pad_stack(arrays: list[np.ndarray], axes=(), multiple: int = 1,
              first_multiple: int | None = None) -> np.ndarray:
  """Stacks arrays, zero-padding each of `axes` to the maximum rounded up to `multiple`
  (`first_multiple` for axis 0 when given)."""
  shape = list(arrays[0].shape)
  for d in axes:
    m = first_multiple if (d == 0 and first_multiple) else multiple
    shape[d] = _round_up(max(a.shape[d] for a in arrays), m)
  return _fill(arrays, shape)


def _fill(arrays, shape) -> np.ndarray:
  out = np.zeros([len(arrays)] + shape, arrays[0].dtype)
  for i, a in enumerate(arrays):
    out[(i,) + tuple(slice(0, s) for s in a.shape)] = a
  return out


def collate(items: list[dict], pad_multiple: int = 1) -> dict[str, np.ndarray]:
  """One batch from example dicts; sequence axes are padded (see `SEQUENCE_AXES`)."""
  batch = {}
  for key in items[0]:
    arrays = [np.asarray(it[key]) for it in items]
    same = all(a.shape == arrays[0].shape for a in arrays)
    if pad_multiple == 1 and same:
      batch[key] = np.stack(arrays)
    else:
      first = max(1, pad_multiple // 8) if key in VISIT_KEYS else None
      batch[key] = pad_stack(arrays, SEQUENCE_AXES.get(key, ()), pad_multiple, first)
  return batch


def sequence_length(item: dict) -> int:
  """Padded size driver of one example: its tokens, or visits x codes."""
  if "codes" in item:
    return int(np.size(item["codes"]))
  return int(np.shape(item["values"])[0])


def split_multiple(examples: Examples, indices, pad_multiple: int) -> int:
  """A padding multiple so large that every batch of `indices` gets the same shape
  (one compilation per evaluated split): the longest sequence axis (visits count 8x,
  see `VISIT_KEYS`), rounded up to `pad_multiple`."""
  if pad_multiple == 1:
    return 1
  longest = 1
  for i in indices:
    for key, value in examples[i].items():
      for axis in SEQUENCE_AXES.get(key, ()):
        scale = 8 if (axis == 0 and key in VISIT_KEYS) else 1
        longest = max(longest, scale * np.shape(value)[axis])
  return _round_up(longest, pad_multiple)


def padded_batch(items: list[dict], batch_size: int, pad_multiple: int = 1):
  """A batch of exactly `batch_size`: missing slots repeat the first item, `_mask` 0."""
  fill = [dict(items[0], _mask=np.float32(0.0))] * (batch_size - len(items))
  return collate(list(items) + fill, pad_multiple)
