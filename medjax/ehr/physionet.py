"""PhysioNet/CinC Challenge 2012 stay files: parsing, cleaning and a cached set loader.

A stay file is a CSV `Time,Parameter,Value` with `Time` as "HH:MM" since ICU admission.
The general descriptors (RecordID, Age, Gender, Height, ICUType and the first Weight at
00:00) become static features; every other row is an event `(hours, variable, value)`.

Cleaning (`clean_value`): -1 means missing; values outside `PLAUSIBLE` (impossible values,
e.g. a heart rate of 0 or a temperature of -17.8 C) are dropped; rows with a blank
parameter name are skipped. Several values of one variable at one timestamp are averaged.
Anything else that does not parse stops with an `InputError` naming `path:line`.

`load_set(set_dir)` parses a whole set directory (set-a, set-b and set-c share the format)
with its outcomes file and caches the result as an .npz keyed by the file names, sizes and
modification times, so cross-validation folds do not re-parse 4000 files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os

import numpy as np

from medjax.ehr.data import IcuData
from medjax.engine.errors import InputError

PARSER_VERSION = 1
STATIC = ("Age", "Gender", "Height", "ICUType", "Weight")
# The 37 time-series parameters (Weight is both a descriptor and a series).
SERIES = (
    "ALP", "ALT", "AST", "Albumin", "BUN", "Bilirubin", "Cholesterol", "Creatinine",
    "DiasABP", "FiO2", "GCS", "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "MAP",
    "MechVent", "Mg", "NIDiasABP", "NIMAP", "NISysABP", "Na", "PaCO2", "PaO2",
    "Platelets", "RespRate", "SaO2", "SysABP", "Temp", "TroponinI", "TroponinT", "Urine",
    "WBC", "Weight", "pH")
_SERIES_INDEX = {name: i for i, name in enumerate(SERIES)}
_POS = 1e-6  # "strictly positive" lower bound
# Inclusive plausible ranges; a value outside is treated as missing.
PLAUSIBLE = {
    "Age": (0, 120), "Gender": (0, 1), "Height": (100, 250), "ICUType": (1, 4),
    "Weight": (20, 300), "HR": (_POS, 300), "DiasABP": (_POS, 300), "SysABP": (_POS, 300),
    "MAP": (_POS, 300), "NIDiasABP": (_POS, 300), "NISysABP": (_POS, 300),
    "NIMAP": (_POS, 300), "RespRate": (_POS, 100), "Temp": (20, 45), "pH": (6.5, 8.0),
    "FiO2": (0.21, 1.0), "GCS": (3, 15), "MechVent": (0, 1), "SaO2": (_POS, 100),
    "PaO2": (_POS, 800), "PaCO2": (5, 200), "Urine": (0, 15000),
}
_DEFAULT_RANGE = (_POS, np.inf)  # laboratory values: strictly positive


@dataclasses.dataclass
class Stay:
  """One parsed, cleaned stay: static descriptors and sorted, de-duplicated events."""
  record_id: int
  static: np.ndarray  # (len(STATIC),) float32, NaN = missing
  times: np.ndarray  # (E,) float32 hours since admission, ascending
  variables: np.ndarray  # (E,) int16 index into SERIES
  values: np.ndarray  # (E,) float32


def clean_value(name: str, value: float) -> float:
  """The value, or NaN when it is a missing marker (-1) or outside `PLAUSIBLE`."""
  if value == -1:
    return float("nan")
  lo, hi = PLAUSIBLE.get(name, _DEFAULT_RANGE)
  return value if lo <= value <= hi else float("nan")


def _parse_time(text: str) -> float:
  hours, minutes = text.split(":")
  if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
    raise ValueError(f"time {text!r} is not HH:MM")
  if int(minutes) >= 60:
    raise ValueError(f"time {text!r} has minutes >= 60")
  return int(hours) + int(minutes) / 60.0


def _parse_row(line: str):
  """`(hours, name, value)` of one data line, or None for a blank parameter name."""
  fields = line.rstrip("\r\n").split(",")
  if len(fields) != 3:
    raise ValueError(f"expected 3 comma-separated fields, got {len(fields)}")
  time_text, name, value_text = (f.strip() for f in fields)
  if not name:
    return None
  if name != "RecordID" and name not in STATIC and name not in _SERIES_INDEX:
    raise ValueError(f"unknown parameter {name!r}")
  try:
    value = float(value_text)
  except ValueError:
    raise ValueError(f"value {value_text!r} is not a number") from None
  if not math.isfinite(value):
    raise ValueError(f"value {value_text!r} is not a finite number")
  return _parse_time(time_text), name, value


def parse_stay(path: str) -> Stay:
  """Parses one stay file; raises `InputError("path:line: ...")` on malformed input."""
  try:
    with open(path, encoding="utf-8") as f:
      return _parse_lines(path, f)
  except UnicodeDecodeError as e:
    raise InputError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None


def _parse_lines(path: str, f) -> Stay:
  record_id, static = None, np.full(len(STATIC), np.nan, np.float32)
  descriptor_weight_seen = False
  events: dict[tuple[float, int], list[float]] = {}
  header = f.readline()
  if header.strip().replace(" ", "") != "Time,Parameter,Value":
    raise InputError(f"{path}:1: expected header 'Time,Parameter,Value', got {header!r}")
  for lineno, line in enumerate(f, start=2):
    if not line.strip():
      continue
    try:
      row = _parse_row(line)
    except ValueError as e:
      raise InputError(f"{path}:{lineno}: {e}") from None
    if row is None:
      continue
    hours, name, value = row
    if name == "RecordID":
      record_id = int(value)
    elif name in STATIC and not (name == "Weight" and (hours > 0 or descriptor_weight_seen)):
      descriptor_weight_seen |= name == "Weight"
      static[STATIC.index(name)] = clean_value(name, value)
    else:
      value = clean_value(name, value)
      if not np.isnan(value):
        events.setdefault((hours, _SERIES_INDEX[name]), []).append(value)
  if record_id is None:
    raise InputError(f"{path}: no RecordID row")
  keys = sorted(events)
  return Stay(
      record_id=record_id, static=static,
      times=np.array([k[0] for k in keys], np.float32),
      variables=np.array([k[1] for k in keys], np.int16),
      values=np.array([np.mean(events[k]) for k in keys], np.float32))


def read_outcomes(path: str) -> dict[int, int]:
  """RecordID -> In-hospital_death from an Outcomes-*.txt file."""
  with open(path, encoding="utf-8") as f:
    header = [h.strip() for h in f.readline().split(",")]
    if "RecordID" not in header or "In-hospital_death" not in header:
      raise InputError(f"{path}:1: needs RecordID and In-hospital_death columns")
    rid, death = header.index("RecordID"), header.index("In-hospital_death")
    out = {}
    for lineno, line in enumerate(f, start=2):
      if line.strip():
        fields = line.split(",")
        try:
          out[int(fields[rid])] = int(fields[death])
        except (ValueError, IndexError):
          raise InputError(f"{path}:{lineno}: malformed outcome row {line!r}") from None
  return out


def default_outcomes_path(set_dir: str) -> str:
  """`.../set-a` -> `.../Outcomes-a.txt` (the layout of the challenge release)."""
  set_dir = os.path.abspath(set_dir)
  suffix = os.path.basename(set_dir).split("-")[-1]
  return os.path.join(os.path.dirname(set_dir), f"Outcomes-{suffix}.txt")


def _stay_files(set_dir: str) -> list[str]:
  if not os.path.isdir(set_dir):
    raise InputError(f"PhysioNet set directory {set_dir} not found")
  names = sorted(n for n in os.listdir(set_dir) if n.endswith(".txt"))
  if not names:
    raise InputError(f"no stay files (*.txt) in {set_dir}")
  return [os.path.join(set_dir, n) for n in names]


def _cache_key(files: list[str], outcomes: str) -> str:
  h = hashlib.sha1(f"v{PARSER_VERSION}".encode())
  for path in files + [outcomes]:
    st = os.stat(path)
    h.update(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
  return h.hexdigest()[:16]


def _parse_set(files: list[str], outcomes_path: str) -> IcuData:
  outcomes = read_outcomes(outcomes_path)
  stays = [parse_stay(p) for p in files]
  missing = [s.record_id for s in stays if s.record_id not in outcomes]
  if missing:
    raise InputError(f"{outcomes_path}: no outcome for RecordID {missing[:5]}")
  return IcuData.from_events(
      ids=np.array([s.record_id for s in stays]),
      labels=np.array([outcomes[s.record_id] for s in stays]),
      static=np.stack([s.static for s in stays]), static_names=STATIC,
      variables=SERIES, events=[(s.times, s.variables, s.values) for s in stays])


def load_set(set_dir: str, outcomes_path: str = "", cache_dir: str = "") -> IcuData:
  """Parses (or loads from the .npz cache in `cache_dir`) one set directory."""
  outcomes_path = outcomes_path or default_outcomes_path(set_dir)
  if not os.path.isfile(outcomes_path):
    raise InputError(f"outcomes file {outcomes_path} not found (give its path with "
                     "--config.task.outcomes, or --outcomes when evaluating)")
  files = _stay_files(set_dir)
  if not cache_dir:
    return _parse_set(files, outcomes_path)
  cache = os.path.join(cache_dir, f"physionet2012_{_cache_key(files, outcomes_path)}.npz")
  if os.path.exists(cache):
    return IcuData.load(cache)
  data = _parse_set(files, outcomes_path)
  os.makedirs(cache_dir, exist_ok=True)
  data.save(cache)
  with open(cache[:-4] + ".json", "w") as f:
    json.dump({"set_dir": os.path.abspath(set_dir), "outcomes": outcomes_path,
               "stays": len(files)}, f)
  return data
