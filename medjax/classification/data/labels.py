"""Multi-label CSVs (CheXpert / NIH ChestX-ray14 layouts) and the uncertain-label policy.

A label cell is stored as a code: 1 positive, 0 negative, -1 uncertain (CheXpert),
-2 blank (not mentioned: missing). `apply_policy` turns codes into targets and a
loss mask with CheXpert's named policies for uncertain labels: "ones" (-> 1),
"zeros" (-> 0) or "ignore" (masked out of the loss and the metrics). Blank is
always masked.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from medjax.engine.errors import InputError
from medjax.segmentation.data.errors import DataError

POLICIES = ("ones", "zeros", "ignore")
POSITIVE, NEGATIVE, UNCERTAIN, MISSING = 1, 0, -1, -2
NO_FINDING = "No Finding"
_CODES = {1.0: POSITIVE, 0.0: NEGATIVE, -1.0: UNCERTAIN}


class Row(NamedTuple):
  path: str  # as written in the CSV
  codes: np.ndarray  # (K,) int8
  group: str  # patient group ("" when the CSV has no group column)
  line: int


def check_policy(policy: str) -> str:
  if policy not in POLICIES:
    raise InputError(f"config.task.uncertain_policy: unknown {policy!r} (known: "
                     f"{', '.join(POLICIES)}: uncertain -1 labels become 1, become 0, "
                     "or are left out of the loss and metrics)")
  return policy


def apply_policy(codes, policy: str) -> tuple[np.ndarray, np.ndarray]:
  """Label codes (..., K) -> (targets, mask) float32 under uncertain-label `policy`."""
  codes = np.asarray(codes)
  uncertain = codes == UNCERTAIN
  targets = (codes == POSITIVE) | (uncertain & (policy == "ones"))
  mask = (codes == POSITIVE) | (codes == NEGATIVE) | (uncertain & (policy != "ignore"))
  return targets.astype(np.float32), mask.astype(np.float32)


def parse_code(text: str) -> int | None:
  """A label cell -> its code, or None when it is not 1, 0, -1 (also 1.0, ...) or blank."""
  text = text.strip()
  if not text:
    return MISSING
  try:
    return _CODES.get(float(text))
  except ValueError:
    return None


def _header(reader, path: str, needed: Sequence[str]) -> list[str]:
  header = next(reader, None)
  if header is None:
    raise DataError(f"{path} is empty; expected a header row")
  missing = [c for c in needed if c not in header]
  if missing:
    raise DataError(f"{path} has no column {', '.join(map(repr, missing))}; its columns "
                     f"are {header}")
  return header


def _codes_from_columns(cells: dict, columns, where: str, problems: list) -> np.ndarray:
  codes = []
  for column in columns:
    code = parse_code(cells[column])
    if code is None:
      problems.append(f"{where}: column {column!r} has {cells[column]!r}; expected 1, 0, "
                      "-1 (uncertain: see config.task.uncertain_policy) or blank (missing)")
      code = MISSING
    codes.append(code)
  return np.asarray(codes, np.int8)


def _codes_from_findings(text: str, columns, where: str, problems: list) -> np.ndarray:
  names = {n.strip() for n in text.split("|") if n.strip()}
  unknown = sorted(names - set(columns) - {NO_FINDING})
  if unknown:
    problems.append(f"{where}: findings {unknown} are not among the label columns "
                    f"{list(columns)} (or {NO_FINDING!r})")
  return np.asarray([POSITIVE if c in names else NEGATIVE for c in columns], np.int8)


def read_rows(path: str, path_column: str, label_columns: Sequence[str],
              findings_column: str = "", group_column: str = "") -> tuple[list[Row], list]:
  """The rows of a label CSV and one message per bad cell (file, line, column, value).

  Labels come from one column per finding (CheXpert: 1 / 0 / -1 / blank) or, with
  `findings_column`, from one "A|B" cell per row (NIH ChestX-ray14's "Finding
  Labels"; listed findings are positive, the others negative).
  """
  if not label_columns:
    raise InputError("config.task.builder.label_columns is empty: name the finding columns")
  needed = [path_column, *([findings_column] if findings_column else label_columns)]
  needed += [group_column] if group_column else []
  rows, problems = [], []
  with open(path, newline="", encoding="utf-8-sig") as f:
    reader = csv.reader(f)
    header = _header(reader, path, needed)
    for line, values in enumerate(reader, start=2):
      if not any(v.strip() for v in values):
        continue
      cells = dict(zip(header, values + [""] * (len(header) - len(values))))
      where = f"{path}:{line}"
      if findings_column:
        codes = _codes_from_findings(cells[findings_column], label_columns, where, problems)
      else:
        codes = _codes_from_columns(cells, label_columns, where, problems)
      rows.append(Row(cells[path_column], codes, cells[group_column] if group_column else "",
                      line))
  return rows, problems
