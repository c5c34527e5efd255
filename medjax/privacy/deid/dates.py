"""Date shifting by whole days (intervals kept) and dummy date/time values.

A shift by whole days leaves times of day (TM) as they are; DA and the date part
of DT move by the patient's offset. A value that is not a valid date returns
None, and the caller replaces it with a dummy instead.
"""

from __future__ import annotations

import datetime
import re

DUMMY = {"DA": "19000101", "TM": "000000", "DT": "19000101000000"}
_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(.*)$")


def _shift_date(text: str, days: int) -> str | None:
  m = _DT.match(text.strip())
  if not m:
    return None
  year, month, day, rest = m.groups()
  try:
    d = datetime.date(int(year), int(month or 1), int(day or 1))
    d += datetime.timedelta(days=days)
  except (ValueError, OverflowError):
    return None
  # A year or year-month keeps its precision: the shifted first of the period.
  out = f"{d.year:04d}" + (f"{d.month:02d}" if month else "") + (f"{d.day:02d}" if day else "")
  return out + rest


def shift_value(text: str, vr: str, days: int) -> str | None:
  """`text` (one DA, DT or TM value, or a DA/DT range A-B) shifted by `days` days."""
  if vr == "TM" or not text:
    return text
  if vr == "DA" and re.fullmatch(r"\d{4}\.\d{2}\.\d{2}", text.strip()):
    text = text.replace(".", "")  # ACR-NEMA dates
  if vr == "DA" and "-" in text:
    parts = [_shift_date(p, days) if p else "" for p in text.split("-")]
    return None if None in parts else "-".join(parts)
  if vr == "DA" and not re.fullmatch(r"\d{8}", text.strip()):
    return None
  return _shift_date(text, days)
