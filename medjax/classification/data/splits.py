"""Validation splits grouped by patient, so one patient's images never land in both parts."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import numpy as np

from medjax.segmentation.data.errors import DataError

# Kermany chest X-rays: "person12_bacteria_45" -> person12, "NORMAL2-IM-0383-0001" ->
# NORMAL2-IM-0383, "IM-0115-0001" -> IM-0115; CheXpert paths: ".../patient00001/..." ->
# patient00001. Names that match none are their own group.
DEFAULT_GROUP_PATTERN = r"(patient\d+|person\d+|(?:[A-Za-z0-9]+-)?IM-\d+)"


def group_of(name: str, pattern: str = DEFAULT_GROUP_PATTERN) -> str:
  """The patient group of file `name`: the first match of `pattern` (its group 1 when it
  has one), else the file stem."""
  if pattern:
    try:
      match = re.search(pattern, name)
    except re.error as e:
      raise DataError(f"group_pattern {pattern!r} is not a regular expression: {e}") from e
    if match:
      return match.group(1) if match.groups() else match.group(0)
  return os.path.splitext(os.path.basename(name))[0]


def grouped_val_mask(groups: Sequence[str], val_fraction: float, seed: int) -> np.ndarray:
  """(N,) bool, True for validation: whole groups, in a seeded random order, until at
  least `val_fraction` of the examples are taken (none when the fraction is 0)."""
  if not 0.0 <= val_fraction < 1.0:
    raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
  groups = np.asarray(list(groups), dtype=object)
  mask = np.zeros(len(groups), bool)
  if val_fraction == 0 or len(groups) == 0:
    return mask
  unique = sorted(set(groups.tolist()))
  order = np.random.default_rng(seed).permutation(len(unique))
  target = val_fraction * len(groups)
  for index in order:
    if mask.sum() >= target:
      break
    mask |= groups == unique[index]
  if mask.all():
    raise DataError(f"val_fraction={val_fraction} leaves no training example "
                    f"({len(unique)} patient groups)")
  return mask
