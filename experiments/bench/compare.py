"""Accuracy comparison: several configs (models, settings) x seeds on one task, one table.

Each run is the experiment's own command in its own workdir,

  python -m experiments.<task> --config=<config> --config.<k>=<v> ... \
      --config.seed=<seed> --workdir=<out_dir>/<variant>/seed<seed>

so every cell of the table can be rerun alone, and a killed comparison resumes
(finished runs are read back from their `metrics.json`, unfinished ones resume
from their checkpoints). A run's metrics are those of its best checkpoint when
the config keeps one, else of its last step.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Sequence

_LABEL = re.compile(r"^[\w.\-]+$")


@dataclasses.dataclass(frozen=True)
class Variant:
  label: str
  overrides: tuple[str, ...]  # "key=value" under --config.


def parse_variant(text: str) -> Variant:
  """"gru:task.model=gru,task.hidden=64" -> Variant("gru", (...)); no label: "base"."""
  label, _, body = text.partition(":") if ":" in text.split("=")[0] else ("", "", text)
  overrides = tuple(o.strip() for o in body.split(",") if o.strip())
  for o in overrides:
    if "=" not in o:
      raise ValueError(f"--variants {text!r}: override {o!r} is not key=value")
  label = label or (re.sub(r"[^\w.\-]+", "_", "_".join(overrides)) or "base")
  if not _LABEL.match(label):
    raise ValueError(f"--variants {text!r}: label {label!r} may hold only letters, digits, "
                     "'_', '.' and '-'")
  return Variant(label, overrides)


def run_command(experiment: str, config: str, variant: Variant, seed: int,
                workdir: str) -> list[str]:
  return [sys.executable, "-m", f"experiments.{experiment}", f"--config={config}",
          *(f"--config.{o}" for o in variant.overrides), f"--config.seed={seed}",
          f"--workdir={workdir}"]


def read_metrics(workdir: str) -> dict[str, float] | None:
  """Final metrics of a finished run (best checkpoint if kept), or None."""
  path = os.path.join(workdir, "metrics.json")
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    summary = json.load(f)
  return {k: float(v) for k, v in (summary.get("best") or summary["last"]).items()}


def run_all(experiment, config, variants: Sequence[Variant], seeds: Sequence[int], out_dir,
            dry_run=False) -> dict[str, list[dict[str, float]]]:
  """Runs (or reads back) every variant x seed; returns {label: [metrics per seed]}."""
  labels = [v.label for v in variants]
  if len(set(labels)) < len(labels):
    raise ValueError(f"--variants: labels must differ, got {labels}")
  results = {}
  for variant in variants:
    results[variant.label] = []
    for seed in seeds:
      workdir = os.path.join(out_dir, variant.label, f"seed{seed}")
      command = run_command(experiment, config, variant, seed, workdir)
      if dry_run:
        print(" ".join(command))
        continue
      _check_same_command(workdir, command)
      if read_metrics(workdir) is None:
        print("running:", " ".join(command), flush=True)
        subprocess.run(command, check=True)
      metrics = read_metrics(workdir)
      if metrics is None:
        raise RuntimeError(f"{workdir}: the run ended without metrics.json (stopped early, "
                           "or task.repeats > 1: in a comparison the seeds are the repeats)")
      results[variant.label].append(metrics)
  return results


def _check_same_command(workdir: str, command: list[str]) -> None:
  """Records the run's command; a workdir made by another command is an error, not
  a result to reuse."""
  path = os.path.join(workdir, "compare_command.txt")
  line = " ".join(command[1:])  # without the interpreter's path
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      old = f.read().strip()
    if old != line:
      raise ValueError(f"{workdir} holds a run of another command:\n  {old}\nnot\n  {line}"
                       "\nUse another --out_dir or variant label.")
    return
  os.makedirs(workdir, exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write(line + "\n")


def summarize(results: dict[str, list[dict[str, float]]],
              metrics: Sequence[str] = ()) -> list[dict]:
  """One row per variant: n and, per metric, mean and sample sd over seeds."""
  every = [set(r) for runs in results.values() for r in runs]
  names = list(metrics) or sorted(set.intersection(*every)) if every else []
  rows = []
  for label, runs in results.items():
    row = {"variant": label, "n": len(runs)}
    for name in names:
      values = [r[name] for r in runs if name in r]
      if len(values) < len(runs):
        raise KeyError(f"metric {name!r} is missing from runs of {label!r}; they have "
                       f"{sorted(runs[0])}")
      row[name] = _mean_sd(values)
    rows.append(row)
  return rows


def _mean_sd(values: list[float]) -> tuple[float, float]:
  """Mean and sample sd (NaN for one value); equal values give exactly (value, 0)."""
  if len(values) > 1 and all(v == values[0] for v in values):
    return values[0], 0.0
  mean = sum(values) / len(values)
  var = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)
         if len(values) > 1 else float("nan"))
  return mean, math.sqrt(var)


def constant_metrics(rows: list[dict]) -> dict[str, float]:
  """Metrics with one value in every run of every variant (bookkeeping such as a test
  set's size or prevalence), when there are at least two runs."""
  if sum(row["n"] for row in rows) < 2:
    return {}
  names = [k for k in rows[0] if k not in ("variant", "n")]
  return {name: rows[0][name][0] for name in names
          if all(row[name][0] == rows[0][name][0]
                 and (row[name][1] == 0 or row["n"] == 1) for row in rows)}


def markdown(rows: list[dict]) -> str:
  """The table of mean ± sd; metrics equal in every run go to a line below it."""
  constant = constant_metrics(rows)
  names = [k for k in rows[0] if k not in ("variant", "n", *constant)]
  lines = ["| variant | n | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
  for row in rows:
    cells = [f"{row[n][0]:.4f} ± {row[n][1]:.4f}" for n in names]
    lines.append(f"| {row['variant']} | {row['n']} | " + " | ".join(cells) + " |")
  if constant:
    same = ", ".join(f"{name} {value:.6g}" for name, value in constant.items())
    lines += ["", f"The same in every run (not in the table): {same}."]
  return "\n".join(lines) + "\n"


def write(rows: list[dict], out_dir: str, context: dict) -> str:
  """compare.md, compare.csv (mean and sd columns of every metric, constant ones too) and
  a line in results.jsonl."""
  os.makedirs(out_dir, exist_ok=True)
  table = markdown(rows)
  with open(os.path.join(out_dir, "compare.md"), "w", encoding="utf-8") as f:
    f.write(table)
  names = [k for k in rows[0] if k not in ("variant", "n")]
  with open(os.path.join(out_dir, "compare.csv"), "w", encoding="utf-8") as f:
    f.write(",".join(["variant", "n"] + [f"{n}_{s}" for n in names for s in ("mean", "sd")])
            + "\n")
    for row in rows:
      cells = [f"{v:.6g}" for n in names for v in row[n]]
      f.write(",".join([row["variant"], str(row["n"]), *cells]) + "\n")
  with open(os.path.join(out_dir, "results.jsonl"), "a", encoding="utf-8") as f:
    f.write(json.dumps({"mode": "compare", **context, "rows": rows}) + "\n")
  return table
