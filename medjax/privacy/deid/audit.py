"""The audit of a run: a CSV row per changed attribute per file, and a JSON summary.

Rows name the input file (relative to the input folder), the output file, the
attribute (tag path and keyword) and the action, never an original value.
Skipped files get one row each, with the reason.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json

from medjax.privacy.deid import dataset as dataset_lib
from medjax.privacy.deid import writing

COLUMNS = ("file", "output", "tag", "keyword", "action", "rule")


@dataclasses.dataclass
class Audit:
  """What a run did, file by file."""
  rows: list[tuple] = dataclasses.field(default_factory=list)
  written: list[str] = dataclasses.field(default_factory=list)
  skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
  burned_in_written: list[tuple[str, str]] = dataclasses.field(default_factory=list)

  def add_file(self, file: str, output: str, changes: list[dataset_lib.Change]) -> None:
    self.written.append(file)
    self.rows.extend((file, output, c.tag, c.keyword, c.action, c.source) for c in changes)

  def skip(self, file: str, reason: str) -> None:
    self.skipped.append((file, reason))
    self.rows.append((file, "", "", "", "SKIPPED", reason))

  def write_csv(self, path: str) -> None:
    def write(tmp):
      with open(tmp, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        out.writerows(self.rows)
    writing.atomic_write(path, write)

  def summary(self, **extra) -> dict:
    actions = collections.Counter(r[4] for r in self.rows if r[4] != "SKIPPED")
    return {"files_written": len(self.written), "files_skipped": len(self.skipped),
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "written_with_burned_in_risk": [{"file": f, "reason": r}
                                            for f, r in self.burned_in_written],
            "changes_by_action": dict(sorted(actions.items())), **extra}

  def write_summary(self, path: str, **extra) -> dict:
    summary = self.summary(**extra)
    def write(tmp):
      with open(tmp, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    writing.atomic_write(path, write)
    return summary
