"""Evaluating a trained checkpoint on another PhysioNet set directory.

The run's config (`<checkpoint_dir>/config.json`, written by `experiments/ehr.py`) and
its training-split preprocessing statistics (`ehr_preprocessing.json`) are read back;
the new set is normalised with those statistics, never refitted. Every stay of the new
set is evaluated; metrics, predictions and figures go to `output_dir`.
"""

from __future__ import annotations

import json
import os

import ml_collections
import numpy as np

from medjax.ehr import task as task_lib
from medjax.engine.errors import InputError


def load_run_config(checkpoint_dir: str) -> ml_collections.ConfigDict:
  path = os.path.join(checkpoint_dir, "config.json")
  if not os.path.exists(path):
    raise InputError(f"{path} not found: was {checkpoint_dir} trained by "
                     "experiments/ehr.py?")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def external_task(config, checkpoint_dir: str, set_dir: str, outcomes: str = ""):
  """The run's task with all stays of `set_dir` as its test split."""
  if not os.path.exists(os.path.join(checkpoint_dir, task_lib.PREPROCESSING_FILE)):
    raise InputError(f"no {task_lib.PREPROCESSING_FILE} in {checkpoint_dir}")
  if config.task.dataset != "physionet":
    raise InputError(f"evaluation on a set directory needs a PhysioNet run, not "
                     f"{config.task.dataset!r}")
  data = task_lib.load_dataset(config.task, set_dir, outcomes)
  none = np.zeros(0, np.int64)
  splits = {"train": none, "val": none, "test": np.arange(len(data))}
  return task_lib.EhrTask(config.task, batch_size=config.batch_size, workdir=checkpoint_dir,
                          data=data, splits=splits)


def evaluate_on_set(checkpoint_dir: str, set_dir: str, output_dir: str,
                    outcomes: str = "", best: bool = True,
                    patient: int = -1) -> dict[str, float]:
  """Metrics of the checkpoint in `checkpoint_dir` on every stay of `set_dir`; the
  report explains stay `patient` (default: the highest-risk death)."""
  from medjax.engine import restore  # pylint: disable=import-outside-toplevel
  config = load_run_config(checkpoint_dir)
  config.task.report_patient = patient
  task = external_task(config, checkpoint_dir, set_dir, outcomes)
  _, predict = restore.load_for_prediction(config, checkpoint_dir, task, best=best)
  (evaluator,) = task.evaluators()
  metrics = {f"test/{k}": float(v) for k, v in evaluator.run(predict)}
  os.makedirs(output_dir, exist_ok=True)
  task.report(predict, output_dir)
  with open(os.path.join(output_dir, "metrics.json"), "w") as f:
    json.dump({"checkpoint_dir": checkpoint_dir, "set_dir": set_dir, **metrics}, f, indent=1)
  return metrics
