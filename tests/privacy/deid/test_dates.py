"""Date shifting by whole days keeps intervals; bad dates are refused (None)."""

import datetime

import pytest

from medjax.privacy.deid import dates


def _parse(text):
  return datetime.datetime.strptime(text, "%Y%m%d").date()


@pytest.mark.parametrize("days", [-400, -31, -1, 1, 29, 366])
def test_shift_da_matches_datetime(days):
  for text in ("20040119", "20000229", "19991231", "20240301"):
    expected = (_parse(text) + datetime.timedelta(days=days)).strftime("%Y%m%d")
    assert dates.shift_value(text, "DA", days) == expected


def test_intervals_are_kept():
  a, b = "20030505", "20031117"
  sa, sb = dates.shift_value(a, "DA", -17), dates.shift_value(b, "DA", -17)
  assert (_parse(sb) - _parse(sa)) == (_parse(b) - _parse(a))


def test_dt_keeps_time_and_offset():
  assert dates.shift_value("20031231235959.123456-0500", "DT", 1) == \
      "20040101235959.123456-0500"
  assert dates.shift_value("200312", "DT", 1) == "200312"  # year-month: first of month + 1


def test_tm_is_unchanged_and_ranges_shift():
  assert dates.shift_value("112936.5", "TM", 40) == "112936.5"
  assert dates.shift_value("20040101-20040131", "DA", -1) == "20031231-20040130"
  assert dates.shift_value("2004.01.19", "DA", 1) == "20040120"  # ACR-NEMA form


@pytest.mark.parametrize("text, vr", [("2004-01-19", "DA"), ("20041340", "DA"),
                                      ("garbage", "DT"), ("2004011", "DA")])
def test_invalid_dates_give_none(text, vr):
  assert dates.shift_value(text, vr, 3) is None
