"""Visit-code sequences with an in-hospital mortality label, from MIMIC-III and eICU tables.

One sample per admission (MIMIC-III) or ICU unit stay (eICU). Its visits are the
patient's admissions / stays up to and including this one, ordered in time; each visit
holds its diagnosis (`D:`), procedure (`P:`) and medication (`M:`) codes. The label is
this admission's / stay's in-hospital death.

Caveat (stated, not hidden): the current visit's codes are recorded during or at the end
of the stay (MIMIC diagnoses are discharge codes), so they can reveal the outcome; this is
outcome classification from coded records, not early prediction. For eICU,
`window_hours` keeps only the current stay's codes charted in its first hours.

Tables are CSV or gzipped CSV, found by case-insensitive file name, with column names
treated case-insensitively, so the same loader reads the demos and the full MIMIC-III
tables from a manual directory (only the needed columns are read).
"""

from __future__ import annotations

import collections
import dataclasses
import os

import numpy as np
import pandas as pd

from medjax.engine.errors import InputError

PAD, UNKNOWN = 0, 1


@dataclasses.dataclass
class CodeData:
  ids: np.ndarray  # (N,) admission / unit stay ids
  groups: np.ndarray  # (N,) patient ids (split by these)
  labels: np.ndarray  # (N,) int32
  visits: list  # per sample: list of visits, each a list of code strings
  visit_times: list  # per sample: (visits,) float days since the first visit
  sites: np.ndarray | None = None  # (N,) hospital of each sample (eICU), for federated runs

  def __len__(self) -> int:
    return len(self.ids)


def read_table(directory: str, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
  """Columns `columns` (lower-case names) of table `name` (.csv or .csv.gz, any case)."""
  if not os.path.isdir(directory):
    raise InputError(f"directory {directory} not found (expected the {name} table in it)")
  wanted = {name.lower() + ".csv", name.lower() + ".csv.gz"}
  matches = [f for f in sorted(os.listdir(directory)) if f.lower() in wanted]
  if not matches:
    raise InputError(f"table {name} (.csv / .csv.gz) not found in {directory}")
  path = os.path.join(directory, matches[0])
  frame = pd.read_csv(path, usecols=lambda c: c.lower() in columns, dtype=str,
                      keep_default_na=False)
  frame.columns = [c.lower() for c in frame.columns]
  absent = set(columns) - set(frame.columns)
  if absent:
    raise InputError(f"{path}: missing columns {sorted(absent)}")
  return frame


def _codes_by_key(frame: pd.DataFrame, key: str, column: str, prefix: str) -> dict:
  """key -> list of distinct non-empty codes, in table order."""
  out = collections.defaultdict(dict)
  for k, code in zip(frame[key], frame[column]):
    code = code.strip()
    if code:
      out[k][f"{prefix}:{code}"] = None
  return {k: list(v) for k, v in out.items()}


def _samples(order: pd.DataFrame, code_maps: list[dict], day_column: str) -> CodeData:
  """`order`: one row per visit (key, patient, label, day), sorted by patient and time."""
  ids, groups, labels, visits, times = [], [], [], [], []
  history: dict[str, list] = {}
  for key, patient, label, day in zip(order["key"], order["patient"], order["label"],
                                      order[day_column]):
    codes = [c for m in code_maps for c in m.get(key, [])]
    past = history.setdefault(patient, [])
    past.append((codes, day))
    ids.append(int(key)), groups.append(patient), labels.append(int(label))
    visits.append([v for v, _ in past])
    times.append(np.array([d - past[0][1] for _, d in past], np.float32))
  return CodeData(np.array(ids), np.array(groups), np.array(labels, np.int32), visits, times)


def load_mimic(directory: str) -> CodeData:
  """Admissions of MIMIC-III (demo or full tables in `directory`)."""
  adm = read_table(directory, "ADMISSIONS",
                   ("subject_id", "hadm_id", "admittime", "hospital_expire_flag"))
  diag = read_table(directory, "DIAGNOSES_ICD", ("hadm_id", "seq_num", "icd9_code"))
  proc = read_table(directory, "PROCEDURES_ICD", ("hadm_id", "seq_num", "icd9_code"))
  meds = read_table(directory, "PRESCRIPTIONS", ("hadm_id", "drug"))
  diag, proc = (f.sort_values(["hadm_id", "seq_num"], key=_numeric_key, kind="stable")
                for f in (diag, proc))
  meds["drug"] = meds["drug"].str.lower()
  maps = [_codes_by_key(diag, "hadm_id", "icd9_code", "D"),
          _codes_by_key(proc, "hadm_id", "icd9_code", "P"),
          _codes_by_key(meds, "hadm_id", "drug", "M")]
  admit = pd.to_datetime(adm["admittime"])
  adm["day"] = (admit - admit.min()).dt.total_seconds() / 86400.0
  order = pd.DataFrame({"key": adm["hadm_id"], "patient": adm["subject_id"],
                        "label": adm["hospital_expire_flag"], "day": adm["day"]})
  order = order.sort_values(["patient", "day"], kind="stable")
  return _samples(order, maps, "day")


def _numeric_key(column: pd.Series) -> pd.Series:
  return pd.to_numeric(column, errors="coerce").fillna(1e18)


def _within(frame: pd.DataFrame, offset: str, window_hours: float) -> pd.DataFrame:
  if window_hours <= 0:
    return frame
  return frame[pd.to_numeric(frame[offset], errors="coerce") < window_hours * 60]


def load_eicu(directory: str, window_hours: float = 0.0) -> CodeData:
  """ICU unit stays of eICU with a known hospital discharge status."""
  pat = read_table(directory, "patient", (
      "patientunitstayid", "uniquepid", "patienthealthsystemstayid", "unitvisitnumber",
      "hospitaladmitoffset", "hospitaldischargeyear", "hospitaldischargestatus"))
  pat = pat[pat["hospitaldischargestatus"].isin(["Alive", "Expired"])].copy()
  diag = read_table(directory, "diagnosis",
                    ("patientunitstayid", "diagnosisoffset", "icd9code", "diagnosisstring"))
  diag["code"] = [c.split(",")[0].strip() or s for c, s in
                  zip(diag["icd9code"], diag["diagnosisstring"])]
  treat = read_table(directory, "treatment",
                     ("patientunitstayid", "treatmentoffset", "treatmentstring"))
  meds = read_table(directory, "medication", ("patientunitstayid", "drugstartoffset",
                                              "drugname", "drughiclseqno",
                                              "drugordercancelled"))
  meds = meds[meds["drugordercancelled"] != "Yes"].copy()
  meds["code"] = [n.lower().strip() or (f"hicl{h}" if h else "") for n, h in
                  zip(meds["drugname"], meds["drughiclseqno"])]
  maps = [_codes_by_key(_within(diag, "diagnosisoffset", window_hours),
                        "patientunitstayid", "code", "D"),
          _codes_by_key(_within(treat, "treatmentoffset", window_hours),
                        "patientunitstayid", "treatmentstring", "P"),
          _codes_by_key(_within(meds, "drugstartoffset", window_hours),
                        "patientunitstayid", "code", "M")]
  num = lambda c: pd.to_numeric(pat[c], errors="coerce").fillna(0)
  # Approximate days: discharge year, then minutes from hospital to unit admission.
  pat["day"] = num("hospitaldischargeyear") * 365.0 - num("hospitaladmitoffset") / 1440.0
  pat["label"] = (pat["hospitaldischargestatus"] == "Expired").astype(int)
  pat["visit"] = num("unitvisitnumber")
  order = pat.sort_values(["uniquepid", "hospitaldischargeyear", "patienthealthsystemstayid",
                           "visit"], kind="stable")
  order = order.rename(columns={"patientunitstayid": "key", "uniquepid": "patient"})
  data = _samples(order, maps, "day")
  data.sites = _hospitals(directory, order["key"])
  return data


def _hospitals(directory: str, keys: pd.Series) -> np.ndarray | None:
  """The `hospitalid` of each unit stay in `keys`, or None if the table lacks it."""
  try:
    frame = read_table(directory, "patient", ("patientunitstayid", "hospitalid"))
  except InputError:
    return None
  hospital = dict(zip(frame["patientunitstayid"], frame["hospitalid"]))
  return np.array([hospital[k] for k in keys])


def build_vocab(data: CodeData, indices, min_count: int = 1) -> dict[str, int]:
  """Code -> id from the samples `indices` (training split); 0 pad, 1 unknown."""
  counts = collections.Counter(
      c for i in np.asarray(indices) for visit in data.visits[i] for c in visit)
  kept = sorted(c for c, n in counts.items() if n >= min_count)
  return {c: i + 2 for i, c in enumerate(kept)}


def encode(visits: list, vocab: dict[str, int], max_codes: int) -> np.ndarray:
  """(visits, codes) int32 ids of one sample, codes padded with 0 and cut at `max_codes`."""
  width = max(1, min(max_codes, max((len(v) for v in visits), default=1)))
  out = np.zeros((max(1, len(visits)), width), np.int32)
  for j, visit in enumerate(visits):
    ids = [vocab.get(c, UNKNOWN) for c in visit][:max_codes]
    out[j, :len(ids)] = ids
  return out
