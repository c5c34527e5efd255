"""Target column names from the config: a comma list, a Python list, or a file.

`--config.task.target_columns=y1,y2` splits on commas; a value opening with `(` or `[`
is read as a Python list of names, so names may hold commas
(`--config.task.target_columns='("Hepatobiliary disorders","Renal and urinary disorders")'`);
`--config.task.target_columns_file=names.txt` reads one name per line (blank lines skipped).
"""

from __future__ import annotations

import ast

from medjax.engine.errors import InputError

FLAG = "--config.task.target_columns"
FILE_FLAG = "--config.task.target_columns_file"


def _literal(text: str) -> tuple[str, ...]:
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError) as e:
    raise InputError(f"{FLAG}={text!r}: not a Python list of quoted names ({e})") from None
  if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
    raise InputError(f"{FLAG}={text!r}: a list of quoted names, e.g. '(\"a,b\", \"c\")'")
  return tuple(value)


def _from_file(path: str) -> tuple[str, ...]:
  try:
    with open(path, encoding="utf-8-sig") as f:
      lines = f.read().splitlines()
  except OSError as e:
    raise InputError(f"{FILE_FLAG}={path}: cannot read it ({e.strerror})") from None
  names = tuple(line.strip() for line in lines if line.strip())
  if not names:
    raise InputError(f"{FILE_FLAG}={path}: no column names in it (one per line)")
  return names


def parse(target_columns, target_columns_file: str = "") -> tuple[str, ...] | None:
  """The configured target columns, or None (every column but the SMILES one)."""
  if target_columns_file:
    if target_columns:
      raise InputError(f"set {FLAG} or {FILE_FLAG}, not both")
    names = _from_file(target_columns_file)
  elif isinstance(target_columns, (list, tuple)):
    names = tuple(str(c) for c in target_columns)
  elif target_columns.strip()[:1] in ("(", "["):
    names = _literal(target_columns.strip())
  else:
    names = tuple(c.strip() for c in target_columns.split(",") if c.strip())
  duplicated = sorted({c for c in names if names.count(c) > 1})
  if duplicated:
    raise InputError(f"target columns {duplicated} named more than once ({FLAG})")
  return names or None


def flag_for(target_columns_file: str) -> str:
  """The flag a missing-column message points at."""
  return FILE_FLAG + "=" + target_columns_file if target_columns_file else FLAG
