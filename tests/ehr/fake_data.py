"""Tiny on-disk data sets in the real formats, for end-to-end tests (no shared data)."""

import numpy as np

from medjax.ehr import synthetic


def write_physionet_set(root, suffix: str, num_stays: int, seed: int) -> str:
  """Synthetic stays written as a PhysioNet 2012 set directory `set-<suffix>` with its
  `Outcomes-<suffix>.txt`; returns the set directory."""
  data = synthetic.generate(num_stays, seed=seed, positive_rate=0.4)
  set_dir = root / f"set-{suffix}"
  set_dir.mkdir()
  outcomes = ["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"]
  for i in range(num_stays):
    rid = 100000 * (seed + 1) + i
    age, gender, height, icu, weight = data.static[i]
    lines = ["Time,Parameter,Value", f"00:00,RecordID,{rid}", f"00:00,Age,{age:g}",
             f"00:00,Gender,{gender:g}",
             f"00:00,Height,{-1 if np.isnan(height) else round(height, 1)}",
             f"00:00,ICUType,{icu:g}", f"00:00,Weight,{weight:.1f}"]
    for t, v, x in zip(*data.events(i)):
      minutes = int(round(t * 60))
      lines.append(f"{minutes // 60:02d}:{minutes % 60:02d},{data.variables[v]},{x:.2f}")
    (set_dir / f"{rid}.txt").write_text("\n".join(lines) + "\n")
    outcomes.append(f"{rid},1,1,5,-1,{data.labels[i]}")
  (root / f"Outcomes-{suffix}.txt").write_text("\n".join(outcomes) + "\n")
  return str(set_dir)


def write_mimic_tables(root, num_patients: int = 12, seed: int = 0) -> str:
  """Minimal MIMIC-III ADMISSIONS / DIAGNOSES_ICD / PROCEDURES_ICD / PRESCRIPTIONS."""
  rng = np.random.default_rng(seed)
  adm = ['"SUBJECT_ID","HADM_ID","ADMITTIME","HOSPITAL_EXPIRE_FLAG"']
  diag, proc, meds = ["SUBJECT_ID,HADM_ID,SEQ_NUM,ICD9_CODE"], [
      "SUBJECT_ID,HADM_ID,SEQ_NUM,ICD9_CODE"], ["HADM_ID,DRUG"]
  hadm = 1000
  for s in range(num_patients):
    for k in range(1 + s % 2):
      hadm += 1
      died = int(k == s % 2 and rng.uniform() < 0.4)
      adm.append(f"{s},{hadm},2150-0{k + 1}-0{1 + s % 7} 10:00:00,{died}")
      codes = rng.choice(["4019", "0389", "5849", "42731"], 2 + died, replace=False)
      diag += [f"{s},{hadm},{j + 1},{c}" for j, c in enumerate(codes)]
      proc.append(f"{s},{hadm},1,{rng.choice(['9604', '3893'])}")
      meds.append(f"{hadm},{rng.choice(['Insulin', 'Heparin', 'Vancomycin'])}")
  for name, rows in (("ADMISSIONS", adm), ("DIAGNOSES_ICD", diag),
                     ("PROCEDURES_ICD", proc), ("PRESCRIPTIONS", meds)):
    (root / f"{name}.csv").write_text("\n".join(rows) + "\n")
  return str(root)
