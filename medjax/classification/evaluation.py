"""Evaluating a classifier on one split: probabilities, thresholds, metrics, report files.

The validation evaluator chooses the decision threshold (Youden's J, one per
finding when multi-label; `metrics.choose_thresholds`), which the test evaluator
(final_only) and `--mode=predict` then use. Metrics are
`metrics.classification_report` (flattened: `roc_auc_macro`, `accuracy`,
`sensitivity_macro`, ..., per class `roc_auc/<class>`); the periodic evaluations
skip its bootstrap, the end-of-run report keeps it (95% CIs in `report_<split>.json`).
"""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from medjax.classification import figures
from medjax.classification import metrics
from medjax.classification.data import pipeline
from medjax.engine.task import Evaluator

THRESHOLDS_FILE = "thresholds.json"


def kind_of(info) -> str:
  if info.multi_label:
    return "multilabel"
  return "binary" if len(info.classes) == 2 else "multiclass"


def collect(task, predict_fn, source, batch_size: int):
  """(probabilities (N, K), targets (N,) int or (N, K), label mask (N, K) or None, ids)."""
  probs, targets, masks, ids = [], [], [], []
  for batch in pipeline.eval_batches(source, task.preprocess, batch_size):
    real = np.asarray(batch["_mask"]) > 0
    probs.append(task.probabilities(predict_fn(batch))[real])
    ids += [i for i, r in zip(batch["id"], real) if r]
    if task.info.multi_label:
      targets.append(np.asarray(batch["targets"])[real])
      masks.append(np.asarray(batch["label_mask"])[real])
    else:
      targets.append(np.asarray(batch["label"])[real])
  return (np.concatenate(probs), np.concatenate(targets),
          np.concatenate(masks) if masks else None, ids)


def choose_thresholds(task, probs, targets, mask):
  """Youden thresholds on these (validation) cases: [t] binary, one per finding, or None."""
  return metrics.choose_thresholds(targets, probs, kind_of(task.info), "youden", mask)


def report(task, probs, targets, mask, n_bootstrap: int = 0) -> dict:
  return metrics.classification_report(targets, probs, kind_of(task.info), task.thresholds,
                                       n_bootstrap=n_bootstrap,
                                       class_names=task.info.classes, mask=mask)


class ClassificationEvaluator(Evaluator):
  """Metrics of one split; the validation one (not `final_only`) sets `task.thresholds`."""

  def __init__(self, task, name: str, source, final_only: bool = False):
    self.task, self.name, self.source, self.final_only = task, name, source, final_only

  def run(self, predict_fn):
    probs, targets, mask, _ = collect(self.task, predict_fn, self.source,
                                      self.task.config.eval_batch_size)
    if not self.final_only:
      self.task.thresholds = choose_thresholds(self.task, probs, targets, mask)
    yield from metrics.flatten(report(self.task, probs, targets, mask)).items()


def _write_predictions(path, ids, probs, targets, classes) -> None:
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    label_columns = [f"label_{c}" for c in classes] if targets.ndim == 2 else ["label"]
    writer.writerow(["id", *label_columns, *[f"p_{c}" for c in classes]])
    for i, ident in enumerate(ids):
      labels = targets[i].tolist() if targets.ndim == 2 else [int(targets[i])]
      writer.writerow([ident, *labels, *[f"{p:.6f}" for p in probs[i]]])


def write_report(task, predict_fn, workdir: str) -> dict:
  """Per evaluated split: `predictions_<split>.csv`, `report_<split>.json` (metrics
  with bootstrap CIs), `roc_<split>.png`, `calibration_<split>.png`; and
  `thresholds.json` (chosen on the validation split). Returns the validation
  split's flattened metrics with CIs."""
  c, kind, out = task.config, kind_of(task.info), {}
  for split, source in task.eval_sources.items():
    probs, targets, mask, ids = collect(task, predict_fn, source, c.eval_batch_size)
    if split == c.val_split:
      task.thresholds = choose_thresholds(task, probs, targets, mask)
    _write_predictions(os.path.join(workdir, f"predictions_{split}.csv"), ids, probs,
                       targets, task.info.classes)
    full = report(task, probs, targets, mask, c.bootstrap)
    with open(os.path.join(workdir, f"report_{split}.json"), "w", encoding="utf-8") as f:
      json.dump(full, f, indent=2, default=float)
    if split == c.val_split:
      out = metrics.flatten(full)
    for name, draw in (("roc", figures.roc_figure), ("calibration", figures.reliability_figure)):
      draw(targets, probs, os.path.join(workdir, f"{name}_{split}.png"), kind,
           task.info.classes, title=f"{split} ({len(targets)} cases)", mask=mask)
  with open(os.path.join(workdir, THRESHOLDS_FILE), "w", encoding="utf-8") as f:
    json.dump({"thresholds": task.thresholds, "classes": list(task.info.classes),
               "kind": kind, "chosen_on": c.val_split, "rule": "youden"}, f, indent=2)
  return out
