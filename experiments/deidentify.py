r"""De-identify a folder of DICOM files (PS3.15 Annex E Basic Profile).

  python -m experiments.deidentify --input_dir=scans/ --output_dir=/tmp/scans_deid
  python -m experiments.deidentify --input_dir=scans/ --output_dir=/tmp/scans_deid \
      --date_shift_days_max=60 --key_file=secrets/deid.key

Writes OUTPUT/<pseudonym>/<study>/<series>/<instance>.dcm and, beside OUTPUT (not in
it), OUTPUT.deid_audit.csv, OUTPUT.deid_summary.json and, without --key_file, a new
key OUTPUT.deid_key (reused by later runs into the same OUTPUT). Files that may have
burned-in annotation are listed and not written unless --allow_burned_in.
"""

from absl import app
from absl import flags

from medjax.engine import runtime
from medjax.engine.errors import InputError

_INPUT_DIR = flags.DEFINE_string("input_dir", None, "Folder of DICOM files (recursed).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the de-identified files go "
                                  "(not inside --input_dir).")
_DATE_SHIFT = flags.DEFINE_integer(
    "date_shift_days_max", 0, "0: dates emptied/removed as the Basic Profile says. N > 0: "
    "keep dates, shifted by a keyed per-patient offset of 1..N days (intervals kept).")
_KEY_FILE = flags.DEFINE_string("key_file", None, "Secret key (hex) for pseudonyms, UIDs "
                                "and date offsets; default: OUTPUT.deid_key, made if absent.")
_ALLOW_BURNED_IN = flags.DEFINE_bool("allow_burned_in", False, "Also write files that may "
                                     "have burned-in annotation (check their pixels).")
flags.mark_flags_as_required(["input_dir", "output_dir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # No runtime.start: this main uses no JAX and must not join a multi-process job.
  runtime.quiet_library_logs()
  try:
    from medjax.privacy import deid  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise InputError(f"de-identification needs pydicom ({e}): pip install -e "
                     "\".[privacy]\"") from None
  summary = deid.run(_INPUT_DIR.value, _OUTPUT_DIR.value, _KEY_FILE.value,
                     deid.Options(_DATE_SHIFT.value, _ALLOW_BURNED_IN.value))
  for item in summary["skipped"]:
    print(f"skipped {item['file']}: {item['reason']}")
  print(f"wrote {summary['files_written']} files to {summary['output_dir']}; skipped "
        f"{summary['files_skipped']}; audit: {summary['audit_csv']}")


if __name__ == "__main__":
  runtime.run(main)
