"""End-of-run 3D report: per-case metric table, summary, best/median/worst figures."""

from __future__ import annotations

import json
import os

import numpy as np

from medjax.segmentation.volumes import figures, metrics


def write_report(evaluator, predict_fn, workdir: str) -> dict:
  """`<split>_cases.csv`, `<split>_summary.json` and (with `task.volume.figures`)
  `<split>_cases/{best,median,worst}_<id>.png` orthogonal slices; returns the files."""
  rows = list(evaluator.case_rows(predict_fn))
  prefix = os.path.join(workdir, evaluator.name)
  metrics.write_csv(rows, prefix + "_cases.csv")
  with open(prefix + "_summary.json", "w") as f:
    json.dump(metrics.aggregate(rows), f, indent=1, sort_keys=True)
  written = {"cases": prefix + "_cases.csv", "summary": prefix + "_summary.json"}
  if evaluator.config.volume.figures and rows:
    def load(case_id):  # predicts only the three chosen cases again
      case = next(c for c in evaluator.cases() if c["id"] == case_id)
      pred = np.asarray(evaluator.predict_case(predict_fn, case["image"])).argmax(-1)
      return case["image"][..., 0], case["label"], pred, case["spacing"]

    written["figures"] = figures.write_case_figures(load, rows, prefix + "_cases")
  return written
