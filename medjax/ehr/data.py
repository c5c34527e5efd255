"""`IcuData`: a set of ICU stays as irregular event sequences, static features and labels.

Events of all stays are stored flat (`times`, `var_index`, `values`) with `offsets`, so
a whole set saves to and loads from one .npz file. The PhysioNet builder and the synthetic
generator both produce it; binning and token building (`medjax.ehr.binning`) consume it.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np


@dataclasses.dataclass
class IcuData:
  ids: np.ndarray  # (N,) int64 stay identifiers
  labels: np.ndarray  # (N,) int32 in-hospital death
  static: np.ndarray  # (N, S) float32, NaN = missing
  static_names: tuple[str, ...]
  variables: tuple[str, ...]  # time-series variable names (V)
  times: np.ndarray  # (E,) float32 hours since admission
  var_index: np.ndarray  # (E,) int16 in [0, V)
  values: np.ndarray  # (E,) float32 raw (cleaned, not normalised)
  offsets: np.ndarray  # (N + 1,) int64: stay i owns events offsets[i]:offsets[i+1]

  def __len__(self) -> int:
    return len(self.ids)

  @classmethod
  def from_events(cls, ids, labels, static, static_names, variables, events) -> IcuData:
    """`events`: one `(times, var_index, values)` triple per stay."""
    lengths = [len(e[0]) for e in events]
    cat = lambda k, dtype: (np.concatenate([e[k] for e in events]).astype(dtype)
                            if events else np.zeros(0, dtype))
    return cls(
        ids=np.asarray(ids, np.int64), labels=np.asarray(labels, np.int32),
        static=np.asarray(static, np.float32).reshape(len(ids), len(static_names)),
        static_names=tuple(static_names), variables=tuple(variables),
        times=cat(0, np.float32), var_index=cat(1, np.int16), values=cat(2, np.float32),
        offsets=np.r_[0, np.cumsum(lengths)].astype(np.int64))

  def events(self, i: int):
    """`(times, var_index, values)` of stay `i`."""
    s = slice(self.offsets[i], self.offsets[i + 1])
    return self.times[s], self.var_index[s], self.values[s]

  def stay_of_event(self) -> np.ndarray:
    """(E,) index of the stay that owns each event."""
    return np.repeat(np.arange(len(self)), np.diff(self.offsets))

  def save(self, path: str) -> None:
    """Writes an .npz atomically (parallel runs may share a cache directory)."""
    arrays = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
    arrays["static_names"] = np.array(self.static_names)
    arrays["variables"] = np.array(self.variables)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str) -> IcuData:
    with np.load(path) as z:
      kw = {k: z[k] for k in z.files}
    kw["static_names"] = tuple(str(s) for s in kw["static_names"])
    kw["variables"] = tuple(str(s) for s in kw["variables"])
    return cls(**kw)
