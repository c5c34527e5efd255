"""Applies the profile to one data set, in place, sequences recursed; returns the audit.

Audit entries name the attribute (a tag path into sequences, and keywords) and
the action taken, never a value.
"""

from __future__ import annotations

import dataclasses

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medjax.privacy.deid import actions
from medjax.privacy.deid import dates
from medjax.privacy.deid import iod_types
from medjax.privacy.deid import pseudonyms
from medjax.privacy.deid import rules

_BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
_MODIFIED_DATES_CODE = ("113107", "Retain Longitudinal Temporal Information Modified Dates "
                        "Option")


@dataclasses.dataclass(frozen=True)
class Change:
  """One changed attribute: where it is and what was done (no values)."""
  tag: str
  keyword: str
  action: str
  source: str


def patient_identity(ds: Dataset) -> str:
  """What identifies the patient for pseudonyms and date offsets: the Patient ID, or
  the Patient's Name where the ID is empty."""
  return str(ds.get("PatientID", "") or "") or str(ds.get("PatientName", "") or "")


class _Walker:
  """One pass over a data set with the file's key, IOD family and date offset."""

  def __init__(self, key: bytes, family: str, patient: str, max_shift_days: int):
    self.key = key
    self.family = family
    self.shifting = max_shift_days > 0
    self.offset = pseudonyms.date_offset_days(key, patient, max_shift_days)
    self.pseudonym = pseudonyms.pseudonym(key, patient)
    self.changes: list[Change] = []

  def walk(self, ds: Dataset, tag_path: str = "", kw_path: str = "", in_dummy=False):
    for tag in list(ds.keys()):
      elem = ds[tag]
      rule = rules.rule_for(elem.tag, elem.VR, elem.value, self.family, self.shifting)
      if (rule.action == "K" and in_dummy and elem.VR in actions.NARRATIVE_VRS
          and elem.value not in (None, "")):
        rule = rules.Rule("D", "text inside a D sequence")
      where = (f"{tag_path}({elem.tag.group:04X},{elem.tag.element:04X})",
               kw_path + (elem.keyword or "Unknown"))
      self._apply(ds, elem, rule, where, in_dummy)

  def _record(self, where, action: str, source: str) -> None:
    self.changes.append(Change(where[0], where[1], action, source))

  def _recurse(self, elem, where, in_dummy: bool) -> None:
    for i, item in enumerate(elem.value):
      self.walk(item, f"{where[0]}[{i}].", f"{where[1]}[{i}].", in_dummy)

  def _apply(self, ds: Dataset, elem, rule: rules.Rule, where, in_dummy: bool) -> None:
    action = rule.action
    if action == "X":
      del ds[elem.tag]
      self._record(where, "X", rule.source)
    elif elem.VR == "SQ":
      self._apply_sequence(elem, rule, where, in_dummy)
    elif action == "Z":
      if elem.value not in (None, "", b""):
        actions.make_empty(elem)
        self._record(where, "Z", rule.source)
    elif action == "D":
      actions.make_dummy(elem)
      self._record(where, "D", rule.source)
    elif action == "U":
      self._remap(elem, where, rule.source)
    elif action == "S":
      self._shift(elem, where, rule.source)
    elif action == "P":
      elem.value = self.pseudonym
      self._record(where, "P", rule.source)

  def _apply_sequence(self, elem, rule: rules.Rule, where, in_dummy: bool) -> None:
    if rule.action == "Z":
      if len(elem.value):
        elem.value = Sequence()
        self._record(where, "Z", rule.source)
      return
    if rule.action == "D":  # items kept, the profile applied inside, free text dummied
      self._record(where, "D", rule.source + "; items cleaned")
      in_dummy = True
    self._recurse(elem, where, in_dummy)

  def _values(self, elem) -> list:
    value = elem.value
    return [value] if value is None or isinstance(value, (str, bytes)) else list(value)

  def _set_values(self, elem, values: list) -> None:
    elem.value = values[0] if len(values) == 1 else values

  def _remap(self, elem, where, source: str) -> None:
    old = self._values(elem)
    new = [pseudonyms.remap_uid(self.key, str(v)) if v else v for v in old]
    if new != old:
      self._set_values(elem, new)
      self._record(where, "U", source)

  def _shift(self, elem, where, source: str) -> None:
    old = self._values(elem)
    new = [dates.shift_value(str(v), elem.VR, self.offset) if v else v for v in old]
    if None in new or elem.VR not in dates.DUMMY:
      actions.make_dummy(elem)
      self._record(where, "D", source + "; not a valid date, dummy")
    elif new != [str(v) if v else v for v in old]:
      self._set_values(elem, new)
      self._record(where, "S", source)

  def mark(self, ds: Dataset) -> None:
    """Adds the de-identification markers of PS3.15 E.1.1 item 6."""
    codes = [_BASIC_PROFILE_CODE] + ([_MODIFIED_DATES_CODE] if self.shifting else [])
    items = []
    for value, meaning in codes:
      item = Dataset()
      item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
      items.append(item)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "DICOM PS3.15 E.1 Basic Profile (medjax)"
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if self.shifting else "REMOVED"
    for keyword in ("PatientIdentityRemoved", "DeidentificationMethod",
                    "DeidentificationMethodCodeSequence",
                    "LongitudinalTemporalInformationModified"):
      tag = ds.data_element(keyword).tag
      self._record((f"({tag.group:04X},{tag.element:04X})", keyword), "ADD", "E.1.1 item 6")


def deidentify(ds: Dataset, key: bytes, max_shift_days: int = 0) -> tuple[list[Change], str]:
  """De-identifies `ds` in place; returns the changes and the patient's pseudonym."""
  walker = _Walker(key, iod_types.family(ds.get("SOPClassUID", "")), patient_identity(ds),
                   max_shift_days)
  walker.walk(ds)
  walker.mark(ds)
  return walker.changes, walker.pseudonym
