"""CSV reading that remembers where each data row is in the file.

Messages about a row name the file and its line number (1-based, as an editor
shows it: with a header, data row 0 is usually line 2). Blank lines are skipped,
and a quoted field may span lines; a row's line is the line it starts on.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from medjax.engine.errors import InputError

# Target cells read as a missing label (besides empty ones), compared lower-case.
MISSING_TOKENS = ("", "nan", "na", "n/a", "none", "null")
_MAX_LISTED = 5


@dataclasses.dataclass
class Table:
  frame: pd.DataFrame  # every cell a string
  lines: np.ndarray  # [rows] int64: the file line each data row starts on
  path: str

  def where(self, row: int) -> str:
    """'<file> line <n>' for data row `row` (0-based)."""
    return f"{self.path} line {int(self.lines[row])}"


def _open(path):
  if str(path).endswith(".gz"):
    return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
  return open(path, encoding="utf-8-sig", newline="")


def _records(path):
  """(start line, fields) of each non-blank CSV record of the file."""
  try:
    with _open(path) as f:
      reader, end = csv.reader(f), 0
      for record in reader:
        start, end = end + 1, reader.line_num
        if any(cell.strip() for cell in record):
          yield start, record
  except FileNotFoundError as e:
    raise InputError(f"{path}: no such file") from e
  except (UnicodeDecodeError, csv.Error, OSError) as e:
    raise InputError(f"{path}: not a readable UTF-8 CSV file ({e})") from e


def read(path: str | os.PathLike, column_names: Sequence[str] | None = None) -> Table:
  """All rows as strings. With `column_names` the file has no header and may open
  with '#' comment lines ('#' is also a SMILES triple bond, so only leading ones)."""
  records = _records(path)
  header = list(column_names) if column_names else None
  rows, lines = [], []
  for line, record in records:
    if header is None:
      header = [c.strip() for c in record]
      continue
    if column_names and not rows and record[0].startswith("#"):
      continue
    if len(record) > len(header):
      raise InputError(f"{path} line {line}: {len(record)} fields, but the header has "
                       f"{len(header)} ({', '.join(header)})")
    rows.append(record + [""] * (len(header) - len(record)))
    lines.append(line)
  if header is None:
    raise InputError(f"{path}: empty file (no header line)")
  duplicated = sorted({c for c in header if header.count(c) > 1})
  if duplicated:
    raise InputError(f"{path}: column names {duplicated} appear more than once in the header")
  frame = pd.DataFrame(rows, columns=header, dtype=str) if rows else pd.DataFrame(
      columns=header, dtype=str)
  return Table(frame, np.asarray(lines, np.int64), str(path))


def numeric_columns(table: Table, columns: Sequence[str]) -> np.ndarray:
  """[rows, columns] float64 targets, NaN for a missing label (an empty cell or
  one of MISSING_TOKENS); any other non-number is an error naming its lines."""
  out = np.empty((len(table.frame), len(columns)), np.float64)
  bad = []
  for j, column in enumerate(columns):
    cells = table.frame[column].str.strip()
    values = pd.to_numeric(cells, errors="coerce").to_numpy(np.float64)
    missing = cells.str.lower().isin(MISSING_TOKENS).to_numpy()
    for row in np.flatnonzero(np.isnan(values) & ~missing):
      bad.append(f"{table.where(row)}, column {column!r}: {cells.iloc[row]!r}")
    out[:, j] = values
  if bad:
    listed = "; ".join(bad[:_MAX_LISTED]) + (
        f"; and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else "")
    raise InputError(f"{len(bad)} target cells are not numbers (leave a cell empty for a "
                     f"missing label): {listed}")
  return out
