"""Parsing and cleaning of PhysioNet 2012 stay files, and the cached set loader."""

import os

import numpy as np
import pytest

from medjax.ehr import physionet
from medjax.engine.errors import InputError

HR, GCS, TEMP, WEIGHT = (physionet.SERIES.index(n) for n in ("HR", "GCS", "Temp", "Weight"))

STAY = """Time,Parameter,Value
00:00,RecordID,132539
00:00,Age,54
00:00,Gender,0
00:00,Height,-1
00:00,ICUType,4
00:00,Weight,-1
00:07,GCS,15
00:07,HR,73
00:07,HR,75
00:07,,12
00:37,HR,0
00:37,Temp,-17.8
00:37,Temp,35.6
01:05,Weight,80.5
48:00,HR,90
"""


def _write(tmp_path, name, text):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


def test_hand_written_stay(tmp_path):
  stay = physionet.parse_stay(_write(tmp_path, "132539.txt", STAY))
  assert stay.record_id == 132539
  # Age 54, Gender 0, Height -1 -> missing, ICUType 4, descriptor Weight -1 -> missing.
  np.testing.assert_array_equal(np.isnan(stay.static), [False, False, True, False, True])
  assert stay.static[0] == 54 and stay.static[1] == 0 and stay.static[3] == 4
  # HR 73 and 75 at 00:07 are averaged; HR 0 and Temp -17.8 are impossible (dropped);
  # the blank parameter row is skipped; Weight at 01:05 is a series value.
  expected = [(7 / 60, GCS, 15.0), (7 / 60, HR, 74.0), (37 / 60, TEMP, 35.6),
              (65 / 60, WEIGHT, 80.5), (48.0, HR, 90.0)]
  np.testing.assert_allclose(stay.times, [e[0] for e in expected], rtol=1e-6)
  np.testing.assert_array_equal(stay.variables, [e[1] for e in expected])
  np.testing.assert_allclose(stay.values, [e[2] for e in expected], rtol=1e-6)


@pytest.mark.parametrize("bad_line,message", [
    ("00:40,HR", "3 comma-separated fields"),
    ("0:4x,HR,80", "HH:MM"),
    ("00:75,HR,80", "minutes >= 60"),
    ("00:40,HR,eighty", "not a number"),
    ("00:40,HeartRate,80", "unknown parameter"),
])
def test_malformed_stay_stops_with_path_and_line(tmp_path, bad_line, message):
  lines = STAY.splitlines()
  lines.insert(9, bad_line)  # becomes line 10 of the file
  path = _write(tmp_path, "bad.txt", "\n".join(lines) + "\n")
  with pytest.raises(ValueError, match=f"{path}:10: .*{message}"):
    physionet.parse_stay(path)


def test_bad_header_and_missing_record_id(tmp_path):
  path = _write(tmp_path, "a.txt", "Hour,Param,Value\n00:00,Age,5\n")
  with pytest.raises(ValueError, match=f"{path}:1: expected header"):
    physionet.parse_stay(path)
  path = _write(tmp_path, "b.txt", "Time,Parameter,Value\n00:00,Age,5\n")
  with pytest.raises(ValueError, match="no RecordID"):
    physionet.parse_stay(path)


def _make_set(root, n=3):
  set_dir = root / "set-x"
  set_dir.mkdir()
  for i in range(n):
    (set_dir / f"{100 + i}.txt").write_text(
        f"Time,Parameter,Value\n00:00,RecordID,{100 + i}\n00:00,Age,{60 + i}\n"
        f"00:10,HR,{70 + i}\n02:30,HR,{80 + i}\n")
  rows = "".join(f"{100 + i},1,1,5,-1,{i % 2}\n" for i in range(n))
  (root / "Outcomes-x.txt").write_text(
      "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death\n" + rows)
  return set_dir


def test_load_set_and_cache(tmp_path):
  set_dir = _make_set(tmp_path)
  cache = tmp_path / "cache"
  data = physionet.load_set(str(set_dir), cache_dir=str(cache))
  np.testing.assert_array_equal(data.ids, [100, 101, 102])
  np.testing.assert_array_equal(data.labels, [0, 1, 0])
  np.testing.assert_allclose(data.events(1)[2], [71, 81])
  (cached,) = [f for f in os.listdir(cache) if f.endswith(".npz")]
  again = physionet.load_set(str(set_dir), cache_dir=str(cache))
  np.testing.assert_array_equal(again.values, data.values)
  # Editing a stay file changes the key: the set is parsed again, not read stale.
  (set_dir / "101.txt").write_text(
      "Time,Parameter,Value\n00:00,RecordID,101\n00:10,HR,99\n")
  os.utime(set_dir / "101.txt", ns=(1, 10**18))
  edited = physionet.load_set(str(set_dir), cache_dir=str(cache))
  np.testing.assert_allclose(edited.events(1)[2], [99])
  assert len([f for f in os.listdir(cache) if f.endswith(".npz")]) == 2
  assert cached in os.listdir(cache)


def test_missing_outcome_is_an_error(tmp_path):
  set_dir = _make_set(tmp_path)
  (set_dir / "999.txt").write_text("Time,Parameter,Value\n00:00,RecordID,999\n")
  with pytest.raises(ValueError, match="no outcome for RecordID"):
    physionet.load_set(str(set_dir))


def test_user_data_errors_are_input_errors_naming_the_file(tmp_path):
  set_dir = _make_set(tmp_path)
  with pytest.raises(InputError, match=f"set directory {tmp_path / 'nope'} not found"):
    physionet.load_set(str(tmp_path / "nope"), str(tmp_path / "Outcomes-x.txt"))
  with pytest.raises(InputError, match=f"outcomes file {tmp_path / 'o.txt'} not found"):
    physionet.load_set(str(set_dir), str(tmp_path / "o.txt"))
  (tmp_path / "Outcomes-x.txt").write_text("RecordID,In-hospital_death\n100,1\n101,x\n")
  with pytest.raises(InputError, match=f"Outcomes-x.txt:3: malformed outcome row"):
    physionet.load_set(str(set_dir))
  binary = set_dir / "100.txt"
  binary.write_bytes(b"Time,Parameter,Value\n00:00,RecordID,100\n\xff\xfe\n")
  with pytest.raises(InputError, match=f"{binary}: not a UTF-8 text file"):
    physionet.parse_stay(str(binary))
  binary.write_text("Time,Parameter,Value\n00:00,RecordID,100\n00:10,HR,nan\n")
  with pytest.raises(InputError, match=f"{binary}:3: value 'nan' is not a finite number"):
    physionet.parse_stay(str(binary))


def test_malformed_line_is_an_input_error(tmp_path):
  path = _write(tmp_path, "bad.txt", STAY.replace("00:07,HR,75", "00:07,HR"))
  with pytest.raises(InputError, match=f"^{path}:10: expected 3 comma-separated fields, got 2$"):
    physionet.parse_stay(path)
