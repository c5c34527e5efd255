"""Visit-code sequences from hand-written MIMIC-III and eICU tables."""

import gzip

import numpy as np
import pytest

from medjax.ehr import codes
from medjax.engine.errors import InputError


def _write(path, text, compress=False):
  if compress:
    with gzip.open(str(path) + ".gz", "wt") as f:
      f.write(text)
  else:
    path.write_text(text)


def test_mimic_visits_ordered_in_time(tmp_path):
  # Upper-case quoted headers (demo copy) for some tables, lower-case for others.
  _write(tmp_path / "ADMISSIONS.csv",
         '"ROW_ID","SUBJECT_ID","HADM_ID","ADMITTIME","HOSPITAL_EXPIRE_FLAG"\n'
         "1,7,200,2150-05-01 10:00:00,1\n"  # later admission of patient 7: died
         "2,7,100,2150-01-01 10:00:00,0\n"
         "3,8,300,2101-03-03 00:00:00,0\n", compress=True)
  _write(tmp_path / "diagnoses_icd.csv",
         "row_id,subject_id,hadm_id,seq_num,icd9_code\n"
         "1,7,200,2,4019\n1,7,200,1,0389\n1,7,100,1,25000\n1,8,300,1,4019\n")
  _write(tmp_path / "PROCEDURES_ICD.csv",
         "ROW_ID,SUBJECT_ID,HADM_ID,SEQ_NUM,ICD9_CODE\n1,7,200,1,9604\n")
  _write(tmp_path / "PRESCRIPTIONS.csv",
         "ROW_ID,HADM_ID,DRUG\n1,100,Insulin\n2,100,insulin\n3,200,Heparin\n", compress=True)
  data = codes.load_mimic(str(tmp_path))
  by_id = {int(i): k for k, i in enumerate(data.ids)}
  later = by_id[200]
  assert data.labels[later] == 1
  assert data.visits[later] == [["D:25000", "M:insulin"],
                                ["D:0389", "D:4019", "P:9604", "M:heparin"]]
  np.testing.assert_allclose(data.visit_times[later], [0.0, 120.0])
  assert data.visits[by_id[100]] == [["D:25000", "M:insulin"]]
  assert data.groups[later] == data.groups[by_id[100]] != data.groups[by_id[300]]
  vocab = codes.build_vocab(data, [by_id[300]])
  assert vocab == {"D:4019": 2}
  enc = codes.encode(data.visits[later], vocab, max_codes=3)
  np.testing.assert_array_equal(enc, [[1, 1, 0], [1, 2, 1]])  # unknown = 1, pad = 0


def test_eicu_stays_with_known_status(tmp_path):
  _write(tmp_path / "patient.csv",
         "patientunitstayid,patienthealthsystemstayid,hospitaladmitoffset,"
         "hospitaldischargeyear,hospitaldischargestatus,unitvisitnumber,uniquepid\n"
         "11,1,-100,2014,Expired,2,p1\n10,1,-10,2014,Expired,1,p1\n12,2,0,2015,,1,p2\n")
  _write(tmp_path / "diagnosis.csv",
         "patientunitstayid,diagnosisoffset,diagnosisstring,icd9code\n"
         '10,5,sepsis,"038.9, A41.9"\n11,3000,shock,\n')
  _write(tmp_path / "treatment.csv",
         "patientunitstayid,treatmentoffset,treatmentstring\n11,10,intubation\n")
  _write(tmp_path / "medication.csv",
         "patientunitstayid,drugstartoffset,drugname,drughiclseqno,drugordercancelled\n"
         "10,1,ASPIRIN,,No\n10,2,,123,No\n11,5,WARFARIN,,Yes\n")
  data = codes.load_eicu(str(tmp_path))
  np.testing.assert_array_equal(data.ids, [10, 11])  # stay 12 has no status: dropped
  np.testing.assert_array_equal(data.labels, [1, 1])
  assert data.visits[1] == [["D:038.9", "M:aspirin", "M:hicl123"],
                            ["D:shock", "P:intubation"]]
  windowed = codes.load_eicu(str(tmp_path), window_hours=24)
  assert windowed.visits[1][1] == ["P:intubation"]  # diagnosis at 50 h is cut


def test_missing_tables_and_columns_are_input_errors(tmp_path):
  with pytest.raises(InputError, match=f"directory {tmp_path / 'gone'} not found"):
    codes.read_table(str(tmp_path / "gone"), "ADMISSIONS", ("hadm_id",))
  with pytest.raises(InputError, match=f"table ADMISSIONS .* not found in {tmp_path}"):
    codes.read_table(str(tmp_path), "ADMISSIONS", ("hadm_id",))
  _write(tmp_path / "ADMISSIONS.csv", "SUBJECT_ID\n1\n")
  with pytest.raises(InputError, match=r"ADMISSIONS.csv: missing columns \['hadm_id'\]"):
    codes.read_table(str(tmp_path), "ADMISSIONS", ("hadm_id", "subject_id"))
