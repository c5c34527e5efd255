"""De-identifies every DICOM file under a folder into another folder.

Outputs are named by what they become, never by the input's names (which may
hold identifiers): OUTPUT/<pseudonym>/<Study UID>/<Series UID>/<SOP UID>.dcm,
all UIDs the remapped ones. The key, the audit CSV and the summary are written
beside OUTPUT (OUTPUT.deid_key, .deid_audit.csv, .deid_summary.json), not in
it, so that sharing the folder shares none of them.
"""

from __future__ import annotations

import dataclasses
import os

from absl import logging

from medjax.engine import workdir as workdir_lib
from medjax.engine.errors import InputError
from medjax.privacy.deid import audit as audit_lib
from medjax.privacy.deid import burned_in
from medjax.privacy.deid import dataset as dataset_lib
from medjax.privacy.deid import pseudonyms
from medjax.privacy.deid import reading
from medjax.privacy.deid import writing


@dataclasses.dataclass(frozen=True)
class Options:
  """date_shift_days_max: 0 keeps the Basic Profile (dates removed or emptied); N > 0
  shifts dates by a keyed per-patient offset of 1..N days either way."""
  date_shift_days_max: int = 0
  allow_burned_in: bool = False


def sidecar_paths(output_dir: str) -> dict[str, str]:
  """Where the key, audit and summary of a run into `output_dir` go."""
  base = os.path.abspath(output_dir).rstrip(os.sep)
  return {"key": base + ".deid_key", "audit": base + ".deid_audit.csv",
          "summary": base + ".deid_summary.json"}


def _inside(path: str, folder: str) -> bool:
  path, folder = os.path.realpath(path), os.path.realpath(folder)
  return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_dirs(input_dir: str, output_dir: str, key_file: str | None = None) -> None:
  """Refuses a missing input folder, an output folder equal to it, inside it or holding
  it, and a key file inside the output; then makes the output folder."""
  workdir_lib.require_existing(input_dir, "--input_dir", "the DICOM files to de-identify")
  if not output_dir:
    raise InputError("--output_dir is empty: give a directory for the de-identified files")
  if _inside(output_dir, input_dir):
    raise InputError(f"--output_dir={output_dir} is inside --input_dir={input_dir} (or the "
                     "same): the outputs would mix with the originals; give a folder "
                     "outside it")
  if _inside(input_dir, output_dir):
    raise InputError(f"--input_dir={input_dir} is inside --output_dir={output_dir}: sharing "
                     "the de-identified folder would share the originals; give an output "
                     "folder outside it")
  if key_file and _inside(key_file, output_dir):
    raise InputError(f"--key_file={key_file} is inside --output_dir: it would be shared "
                     "with the de-identified files; keep it elsewhere")
  workdir_lib.require_writable(output_dir, "--output_dir")


def input_files(input_dir: str) -> list[str]:
  """Every file under `input_dir`, sorted (folders too), so runs are reproducible."""
  paths = []
  for root, dirs, files in os.walk(input_dir):
    dirs.sort()
    paths.extend(os.path.join(root, f) for f in sorted(files))
  return paths


def _output_name(ds, pseudonym: str) -> str:
  return os.path.join(pseudonym, str(ds.get("StudyInstanceUID", "") or "no_study"),
                      str(ds.get("SeriesInstanceUID", "") or "no_series"),
                      f"{ds.SOPInstanceUID}.dcm")


def _one_file(path: str, rel: str, output_dir: str, key: bytes, options: Options,
              audit: audit_lib.Audit, seen: dict[str, str]) -> None:
  try:
    ds = reading.read_instance(path)
  except reading.SkipFile as e:
    logging.warning("skipped %s: %s", path, e)
    audit.skip(rel, str(e))
    return
  risk = burned_in.reason(ds)
  if risk and not options.allow_burned_in:
    logging.warning("skipped %s: possible burned-in annotation (%s)", path, risk)
    audit.skip(rel, f"possible burned-in annotation: {risk}; not written "
               "(--allow_burned_in writes it)")
    return
  transfer_syntax = reading.transfer_syntax(ds)
  changes, pseudonym = dataset_lib.deidentify(ds, key, options.date_shift_days_max)
  out_rel = _output_name(ds, pseudonym)
  if out_rel in seen:
    audit.skip(rel, f"same SOP Instance UID as {seen[out_rel]}: a duplicate, not written")
    return
  seen[out_rel] = rel
  writing.save(ds, os.path.join(output_dir, out_rel), transfer_syntax)
  audit.add_file(rel, out_rel, changes)
  if risk:
    audit.burned_in_written.append((rel, risk))


def deidentify_folder(input_dir: str, output_dir: str, key: bytes,
                      options: Options = Options()) -> audit_lib.Audit:
  """De-identifies every file under `input_dir` into `output_dir`; returns the audit
  (the caller writes it, see `run`)."""
  audit = audit_lib.Audit()
  seen: dict[str, str] = {}
  for path in input_files(input_dir):
    rel = os.path.relpath(path, input_dir)
    _one_file(path, rel, output_dir, key, options, audit, seen)
  return audit


def run(input_dir: str, output_dir: str, key_file: str | None = None,
        options: Options = Options()) -> dict:
  """Checks the folders and options, de-identifies, writes the audit and summary
  beside the output; returns the summary."""
  if options.date_shift_days_max < 0:
    raise InputError(f"--date_shift_days_max={options.date_shift_days_max}: give 0 (no "
                     "date shifting) or a positive number of days")
  check_dirs(input_dir, output_dir, key_file)
  paths = sidecar_paths(output_dir)
  key, key_path = pseudonyms.load_or_create_key(key_file, paths["key"])
  audit = deidentify_folder(input_dir, output_dir, key, options)
  audit.write_csv(paths["audit"])
  return audit.write_summary(
      paths["summary"], output_dir=os.path.abspath(output_dir), audit_csv=paths["audit"],
      key_file=key_path, date_shift_days_max=options.date_shift_days_max,
      allow_burned_in=options.allow_burned_in)
