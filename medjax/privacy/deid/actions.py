"""The values the profile's actions put in place: Z (zero length) and D (dummy), by VR.

A dummy is a fixed, obviously artificial value valid for the VR (length limits
included), never derived from the original.
"""

from __future__ import annotations

from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence

from medjax.privacy.deid import dates

DUMMY_TEXT = "ANONYMIZED"  # 10 characters: fits SH, CS, AE (16) and all longer string VRs
_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
_NUMBER_STRINGS = {"IS": "0", "DS": "0", "AS": "000Y"}
_BINARY_NUMBERS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT"})
# Free text and names inside a dummied (D) sequence; codes and numbers stay.
NARRATIVE_VRS = frozenset({"PN", "ST", "LT", "UT", "UC"})


def dummy_value(vr: str):
  """A non-empty value for `vr` (UI is handled by UID remapping, SQ by the walker)."""
  vr = vr.split(" or ")[0]  # an ambiguous VR of implicit-VR files ("US or SS")
  if vr in dates.DUMMY:
    return dates.DUMMY[vr]
  if vr in _TEXT_VRS:
    return DUMMY_TEXT
  if vr in _NUMBER_STRINGS:
    return _NUMBER_STRINGS[vr]
  if vr in _BINARY_NUMBERS:
    return 0
  if vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
    return b"\0\0\0\0\0\0\0\0"
  raise ValueError(f"no dummy value for VR {vr}")


def make_empty(elem: DataElement) -> None:
  """Action Z: a zero-length value (an empty sequence for SQ)."""
  if elem.VR == "SQ":
    elem.value = Sequence()
  else:
    elem.value = "" if elem.VR in _TEXT_VRS or elem.VR in dates.DUMMY else None


def make_dummy(elem: DataElement) -> None:
  """Action D on a non-sequence element: one dummy value, whatever the original VM."""
  elem.value = dummy_value(elem.VR)
