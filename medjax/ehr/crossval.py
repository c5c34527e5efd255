"""Cross-validation and repeated random splits: one run per fold, then mean +- sd.

Fold k of `num_folds` (scheme `kfold`) or repetition k (scheme `random`) trains in
`<workdir>/fold_<k>`; rerunning resumes unfinished folds (the engine resumes from a
fold's checkpoints) and reuses the `metrics.json` of finished ones.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Sequence

import numpy as np


class Preempted(RuntimeError):
  """A fold's training was stopped by SIGTERM before it finished."""


def fold_config(config, k: int, folds: int):
  """`config` with the task pointed at fold / repetition `k`."""
  config = copy.deepcopy(config)
  with config.unlocked():
    if config.task.split == "kfold":
      config.task.num_folds, config.task.fold = folds, k
    else:
      config.task.repeat = k
  return config


def summarise(results: list[dict[str, float]]) -> dict[str, dict[str, float]]:
  """{metric: {mean, sd (sample, ddof=1), n, values}} over runs, for shared metrics."""
  names = sorted(set.intersection(*(set(r) for r in results))) if results else []
  out = {}
  for name in names:
    values = np.array([r[name] for r in results], np.float64)
    out[name] = {"mean": float(np.mean(values)),
                 "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                 "n": len(values), "values": values.tolist()}
  return out


def format_summary(summary, metrics=("test/auroc", "test/auprc", "test/brier", "test/ece")
                   ) -> str:
  return "  ".join(f"{m}={summary[m]['mean']:.4f}+-{summary[m]['sd']:.4f} (n={summary[m]['n']})"
                   for m in metrics if m in summary)


def _read_result(fold_dir: str) -> dict[str, float] | None:
  done = os.path.join(fold_dir, "cv_result.json")
  if not os.path.exists(done):
    return None
  with open(done) as f:
    return json.load(f)


def run_folds(config, workdir: str, folds: int,
              train_fn: Callable[[object, str], dict[str, float]],
              only: Sequence[int] = ()) -> dict:
  """Trains every fold with `train_fn(config, fold_workdir)`; writes `cv_summary.json`.

  `only`: train just these folds (e.g. one process per core or machine on one shared
  workdir); the summary then covers every fold finished in `workdir` so far.
  """
  bad = [k for k in only if not 0 <= k < folds]
  if bad:
    raise ValueError(f"fold ids {bad} are not in 0..{folds - 1}")
  for k in only or range(folds):
    fold_dir = os.path.join(workdir, f"fold_{k}")
    if _read_result(fold_dir) is not None:
      continue
    result = {k2: float(v) for k2, v in train_fn(fold_config(config, k, folds),
                                                 fold_dir).items()}
    if "preempted_at_step" in result:  # stopped by SIGTERM: rerun to resume this fold
      raise Preempted(f"fold {k} stopped at step {int(result['preempted_at_step'])}; "
                      "rerun the same command to resume")
    with open(os.path.join(fold_dir, "cv_result.json"), "w") as f:
      json.dump(result, f)
  finished = {k: r for k in range(folds)
              if (r := _read_result(os.path.join(workdir, f"fold_{k}"))) is not None}
  summary = summarise(list(finished.values()))
  with open(os.path.join(workdir, "cv_summary.json"), "w") as f:
    json.dump({"folds": folds, "folds_done": sorted(finished), "scheme": config.task.split,
               "summary": summary}, f, indent=1)
  return summary
