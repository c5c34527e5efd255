"""The profile table: complete enough, well-formed, and agreeing with the standard."""

import collections

import pytest
from pydicom import datadict

from medjax.privacy.deid import iod_types
from medjax.privacy.deid import profile_table

_CODES = {"D", "Z", "X", "K", "C", "U"} | iod_types.COMBINED_CODES


def test_table_covers_the_standard_rows():
  # PS3.15 Table E.1-1 has 460 rows in the edition transcribed, one of them the
  # private-attribute rule and three repeating groups.
  assert len(profile_table.BASIC_PROFILE) == 456
  assert len(profile_table.REPEATING_GROUPS) == 3


def test_rows_are_well_formed():
  tags = [t for t, _, _ in profile_table.BASIC_PROFILE]
  assert len(set(tags)) == len(tags)
  assert tags == sorted(tags)
  for tag, keyword, code in profile_table.BASIC_PROFILE:
    assert code in _CODES, (hex(tag), code)
    assert datadict.keyword_for_tag(tag) == keyword  # the keyword belongs to the tag


@pytest.mark.parametrize("keyword, code", [
    # Rows checked by hand against PS3.15 Table E.1-1.
    ("AccessionNumber", "Z"), ("PatientName", "Z"), ("PatientID", "Z"),
    ("PatientBirthDate", "Z"), ("StudyDate", "Z"), ("SOPInstanceUID", "U"),
    ("StudyInstanceUID", "U"), ("FrameOfReferenceUID", "U"),
    ("ReferencedSOPInstanceUID", "U"), ("InstitutionName", "X/Z/D"),
    ("ReferencedImageSequence", "X/Z/U*"), ("SeriesDate", "X/D"),
    ("ContentDate", "Z/D"), ("PatientAge", "X"), ("ContentSequence", "D"),
    ("OtherPatientIDsSequence", "X"), ("IconImageSequence", "X"),
])
def test_known_rows(keyword, code):
  by_keyword = {k: c for _, k, c in profile_table.BASIC_PROFILE}
  assert by_keyword[keyword] == code


def test_modified_dates_option_lists_only_dates_of_the_table():
  table = {t for t, _, _ in profile_table.BASIC_PROFILE}
  assert profile_table.MODIFIED_DATES_OPTION <= table
  vrs = collections.Counter(datadict.dictionary_VR(t) for t in profile_table.MODIFIED_DATES_OPTION)
  assert set(vrs) <= {"DA", "DT", "TM"}
  # The birth date is not under the option: it stays zero length.
  assert 0x00100030 not in profile_table.MODIFIED_DATES_OPTION
  assert 0x00080020 in profile_table.MODIFIED_DATES_OPTION  # Study Date
