"""Which action applies to one data element: the profile table, then the general rules.

In order: private attributes (X); the repeating groups of curves and overlays
(X); the attributes of Table E.1-1 (their code, resolved for the IOD; Patient ID
and Patient's Name take the keyed pseudonym; dates the option lists are shifted
when date shifting is on); then, for attributes the table does not list, the
rules of PS3.15 E.1 Note 4 and item 5: any other DA/DT/TM is shifted or given a
dummy, any other instance UID (UI not under the DICOM root, not a class or
transfer syntax) is remapped; unknown public tags and group lengths are removed;
everything else is kept (K), sequences recursively.
"""

from __future__ import annotations

import dataclasses

from pydicom import datadict
from pydicom.tag import BaseTag

from medjax.privacy.deid import iod_types
from medjax.privacy.deid import profile_table

TABLE = {tag: (keyword, code) for tag, keyword, code in profile_table.BASIC_PROFILE}
PSEUDONYM_TAGS = frozenset({0x00100020, 0x00100010})  # Patient ID, Patient's Name
DATE_VRS = frozenset({"DA", "DT", "TM"})
DICOM_UID_ROOT = "1.2.840.10008."
# UI attributes that name a class, syntax or scheme, never an instance: kept.
_KEPT_UI_SUFFIXES = ("ClassUID", "TransferSyntaxUID", "SchemeUID", "ClassUIDInFile",
                     "TransferSyntaxUIDInFile", "ContextGroupExtensionCreatorUID",
                     "MappingResourceUID")


@dataclasses.dataclass(frozen=True)
class Rule:
  """The action for one element: X, Z, D, K, U, U* (keep, remap inside), S (shift
  dates), P (pseudonym); `source` says where it came from, for the audit."""
  action: str
  source: str


def _repeating(tag: BaseTag) -> str | None:
  digits = f"{int(tag):08X}"
  for mask, _, code in profile_table.REPEATING_GROUPS:
    if all(m == "X" or m == d for m, d in zip(mask, digits)):
      return code
  return None


def _table_rule(tag: int, family: str, shifting: bool) -> Rule:
  keyword, code = TABLE[tag]
  if tag in PSEUDONYM_TAGS:
    return Rule("P", f"{code}; keyed pseudonym")
  if shifting and tag in profile_table.MODIFIED_DATES_OPTION:
    return Rule("S", f"{code}; Modified Dates option")
  action = iod_types.resolve(code, keyword, family)
  source = code if action == code else f"{code} -> {action} ({family} IOD)"
  return Rule(action, source)


def _uid_rule(keyword: str, value) -> Rule:
  values = [value] if value is None or isinstance(value, str) else list(value)
  if keyword.endswith(_KEPT_UI_SUFFIXES) or all(
      not v or str(v).startswith(DICOM_UID_ROOT) for v in values):
    return Rule("K", "UI (class or standard UID)")
  return Rule("U", "UI not in table (instance UID, E.1 item 5)")


def rule_for(tag: BaseTag, vr: str, value, family: str, shifting: bool) -> Rule:
  """The rule for an element with this tag, VR and value in an IOD of `family`."""
  if tag.is_private:
    return Rule("X", "private attribute")
  code = _repeating(tag)
  if code is not None:
    return Rule(code, f"{code} (curve/overlay group)")
  if int(tag) in TABLE:
    return _table_rule(int(tag), family, shifting)
  if tag.element == 0:
    return Rule("X", "group length")
  if not datadict.dictionary_has_tag(tag):
    return Rule("X", "unknown public attribute")
  if vr == "UI":
    return _uid_rule(datadict.keyword_for_tag(tag), value)
  if vr in DATE_VRS:
    return Rule("S" if shifting else "D", "DA/DT/TM not in table (E.1 Note 4)")
  return Rule("K", "not in table")
