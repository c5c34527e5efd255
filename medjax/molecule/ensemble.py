"""Ensembles (`task.ensemble_size`): members trained on one split with different seeds,
scored on their mean prediction (probabilities for classification, as Chemprop)."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Sequence

import numpy as np

from medjax.engine import restore
from medjax.molecule import report

MEMBER_PREFIX = "member"
SEED_STRIDE = 1000  # member k trains with seed + 1000 k (repeats use seed + r)


def member_dirs(run_dir: str, size: int) -> list[str]:
  return [os.path.join(run_dir, f"{MEMBER_PREFIX}{k}") for k in range(size)]


def member_config(config, k: int):
  c = copy.deepcopy(config)
  c.seed = config.seed + SEED_STRIDE * k
  return c


def _mean_finite(values) -> float:
  v = np.asarray(values, np.float64)
  v = v[np.isfinite(v)]
  return float(v.mean()) if v.size else float("nan")


def combine(member_predictions: Sequence[np.ndarray],
            score: Callable[[np.ndarray], dict[str, float]]) -> tuple[dict, dict]:
  """(`score` of the members' mean prediction, the mean of the members' own scores:
  what a single model is expected to reach)."""
  stack = np.stack([np.asarray(p, np.float64) for p in member_predictions])
  singles = [score(p) for p in stack]
  members = {k: _mean_finite([s[k] for s in singles]) for k in singles[0]}
  return dict(score(stack.mean(0))), members


def evaluate(members: Sequence[tuple[object, str]], task, run_dir: str) -> dict[str, float]:
  """Loads each (config, workdir) member's best checkpoint, predicts val and test with
  `task` and scores their mean (`<split>/<metric>`) beside the members' mean score
  (`members_mean/<split>/<metric>`); writes `ensemble.json` and the test predictions."""
  splits = [s for s in ("val", "test") if len(task.split[s])]
  predictions = {s: [] for s in splits}
  for config, workdir in members:
    _, predict_fn = restore.load_for_prediction(config, workdir, task)
    for s in splits:
      predictions[s].append(task.predict(predict_fn, task.split[s]))
  results = {}
  for s in splits:
    ids = task.split[s]
    ensemble, single = combine(predictions[s], lambda p, ids=ids: task.score(ids, p))
    results.update({f"{s}/{k}": v for k, v in ensemble.items()})
    results.update({f"members_mean/{s}/{k}": v for k, v in single.items()})
  if "test" in splits:
    ids, mean = task.split["test"], np.mean(predictions["test"], axis=0)
    flat = mean if mean.ndim == 2 else mean.argmax(-1).astype(np.float64)
    report.write_predictions(report.figure_path(run_dir, "test_predictions.csv"),
                             [task.data.smiles[i] for i in ids], task.data.rows[ids],
                             task.task_names, task.data.targets[ids], flat)
  with open(os.path.join(run_dir, "ensemble.json"), "w", encoding="utf-8") as f:
    json.dump({"members": [w for _, w in members], "metrics": results}, f, indent=1)
  return results
