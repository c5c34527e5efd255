r"""Side by side: what medjax's de-identifier and dicognito do to each attribute.

  pip install dicognito   # for this comparison only; not a medjax dependency
  python -m experiments.bench.deid_compare
  python -m experiments.bench.deid_compare --files=CT_small.dcm,rtstruct.dcm --markdown
  python -m experiments.bench.deid_compare --date_shift_days_max=30

Both tools run on the same pydicom sample files (in memory; nothing is written).
For every top-level attribute of the inputs, each tool's effect is one of
removed, emptied, replaced, kept, or "kept (empty)" for an empty input value
(across files: the distinct effects, joined by "/"); private attributes are
counted in one row, and nested attributes in the last rows (changed or not,
summed over every item of every sequence).
"""

from __future__ import annotations

import argparse
import collections
import copy

import pydicom
from pydicom.data import get_testdata_file

from medjax.privacy.deid import dataset as dataset_lib

DEFAULT_FILES = ("CT_small.dcm", "MR_small.dcm", "rtstruct.dcm", "test-SR.dcm",
                 "rtplan.dcm", "waveform_ecg.dcm")
KEY = b"deid-compare-key-0123456789abcdef"


def effect(before, after) -> str:
  """removed, emptied, replaced, kept or kept (empty): what became of a top-level element."""
  if after is None:
    return "removed"
  empty_after = after.value in (None, "", b"") or (after.VR == "SQ" and not after.value)
  if before.value in (None, "", b"") or (before.VR == "SQ" and len(before.value) == 0):
    return "kept (empty)" if empty_after else "replaced"
  if before.VR == "SQ":
    if len(after.value) == 0:
      return "emptied"
    return "kept" if after.value == before.value else "replaced"
  if after.value in (None, "", b""):
    return "emptied"
  return "kept" if after.value == before.value else "replaced"


def _nested_changes(before, after) -> tuple[int, int]:
  """(changed, total) nested elements of sequences both outputs still hold."""
  changed = total = 0
  for item_b, item_a in zip(before.value, after.value):
    for elem in item_b:
      total += 1
      new = item_a.get(elem.tag)
      if elem.VR == "SQ" and new is not None:
        c, t = _nested_changes(elem, new)
        changed, total = changed + c, total + t
      elif new is None or new.value != elem.value:
        changed += 1
  return changed, total


def run_medjax(ds, shift_days=0):
  out = copy.deepcopy(ds)
  dataset_lib.deidentify(out, KEY, shift_days)
  return out


def run_dicognito(ds):
  from dicognito.anonymizer import Anonymizer  # pylint: disable=import-outside-toplevel
  out = copy.deepcopy(ds)
  Anonymizer(seed="deid-compare").anonymize(out)
  return out


def compare(files, tools) -> dict:
  """{row label: {tool: Counter of effects}}, and counts of nested changes per tool."""
  rows = collections.defaultdict(lambda: collections.defaultdict(collections.Counter))
  for name in files:
    path = get_testdata_file(name)
    if path is None:
      raise SystemExit(f"--files: {name!r} is not one of pydicom's bundled sample files")
    ds = pydicom.dcmread(path, force=True)
    outputs = {tool: fn(ds) for tool, fn in tools.items()}
    for elem in ds:
      label = ("(private attributes)" if elem.tag.is_private
               else f"{elem.keyword} ({elem.tag.group:04X},{elem.tag.element:04X})")
      for tool, out in outputs.items():
        new = out.get(elem.tag)
        rows[label][tool][effect(elem, new)] += 1
        if elem.VR == "SQ" and new is not None and not elem.tag.is_private:
          changed, total = _nested_changes(elem, new)
          rows["(nested: changed)"][tool]["n"] += changed
          rows["(nested: total)"][tool]["n"] += total
  return rows


def _cell(counter: collections.Counter) -> str:
  if set(counter) == {"n"}:
    return str(counter["n"])
  return "/".join(sorted(counter))


def table(rows, tools, markdown=False) -> str:
  names = list(tools)
  lines = []
  header = ["attribute", *names, "same"]
  body = []
  for label in sorted(rows, key=lambda r: (r.startswith("("), r)):
    cells = [_cell(rows[label][t]) for t in names]
    body.append([label, *cells, "yes" if len(set(cells)) == 1 else "NO"])
  if markdown:
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(r) + " |" for r in body]
  else:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    for r in [header, *body]:
      lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)))
  same = sum(r[-1] == "yes" for r in body)
  lines.append(f"\n{same} of {len(body)} rows handled alike")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--files", default=",".join(DEFAULT_FILES),
                      help="comma-separated pydicom sample file names")
  parser.add_argument("--markdown", action="store_true", help="print a markdown table")
  parser.add_argument("--date_shift_days_max", type=int, default=0,
                      help="medjax's date shifting (dicognito always shifts dates)")
  args = parser.parse_args(argv)
  try:
    import dicognito  # pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    raise SystemExit("dicognito is not installed: pip install dicognito") from None
  tools = {"medjax": lambda ds: run_medjax(ds, args.date_shift_days_max),
           "dicognito": run_dicognito}
  rows = compare(args.files.split(","), tools)
  print(table(rows, tools, args.markdown))


if __name__ == "__main__":
  main()
