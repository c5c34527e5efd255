"""Hyper-parameter search (`--mode=hpopt`), as Chemprop's `chemprop hpopt`: Optuna TPE
over the D-MPNN's depth, hidden size, dropout, FFN layers, learning rate and warm-up.

Each trial is a full training run of the experiment (the `--mode=train` code path) in
`<workdir>/trials/<n>`; its objective is the validation metric the config selects
(`best_metric` / `best_mode`, at the best checkpoint; the mean over `task.repeats`).
The study lives in `<workdir>/hpopt.db` (Optuna RDB storage, SQLite): rerunning the
command continues it up to `trials` finished trials; a finished trial is never rerun,
one interrupted mid-run is run again with its parameters, a diverged one (NaN loss)
stays failed. The best trial goes to `<workdir>/hpopt_best.json` (value, parameters,
flags, full config).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable

import ml_collections

from medjax.engine import train as train_lib
from medjax.engine.errors import InputError

STUDY = "hpopt"
DB_FILE = "hpopt.db"
BEST_FILE = "hpopt_best.json"
# Config path -> (kind, low, high, step or log). Chemprop's searched ranges; the FFN
# width follows the message width (task.head_hidden = task.hidden), as in Chemprop v1.
SPACE = {
    "task.depth": ("int", 2, 6, 1),
    "task.hidden": ("int", 300, 2400, 100),
    "task.dropout": ("float", 0.0, 0.4, 0.05),
    "task.head_layers": ("int", 1, 3, 1),
    "optimizer.learning_rate": ("log", 1e-4, 1e-2, None),
    "task.warmup_epochs": ("float", 0.0, 5.0, 0.5),
}
LINKED = {"task.hidden": ("task.head_hidden",)}


def _optuna():
  try:
    import optuna  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise InputError("--mode=hpopt needs Optuna: pip install -e '.[hpopt]'") from None
  return optuna


def suggest(trial, space: dict) -> dict:
  """The trial's value for every config path of `space`."""
  params = {}
  for path, (kind, low, high, step) in space.items():
    if kind == "int":
      params[path] = trial.suggest_int(path, low, high, step=step)
    elif kind == "float":
      params[path] = trial.suggest_float(path, low, high, step=step)
    else:
      params[path] = trial.suggest_float(path, low, high, log=True)
  return params


def apply(config: ml_collections.ConfigDict, params: dict) -> ml_collections.ConfigDict:
  """A copy of `config` with `params` (and the paths linked to them) set."""
  c = copy.deepcopy(config)
  for path, value in params.items():
    for target in (path, *LINKED.get(path, ())):
      *parents, leaf = target.split(".")
      node = c
      for p in parents:
        node = node[p]
      node[leaf] = value
  return c


def as_flags(params: dict) -> list[str]:
  return [f"--config.{t}={v:.6g}" if isinstance(v, float) else f"--config.{t}={v}"
          for path, v in params.items() for t in (path, *LINKED.get(path, ()))]


def _resume(study, optuna) -> int:
  """Marks trials left running by an interrupted command failed and queues their
  parameters again, in their own folder (so the rerun resumes from its checkpoints);
  returns the finished (complete or pruned) trial count."""
  states = optuna.trial.TrialState
  for t in study.get_trials(deepcopy=False, states=(states.RUNNING,)):
    study.tell(t.number, state=states.FAIL)
    study.enqueue_trial(t.params, user_attrs={"dir": t.user_attrs.get("dir", str(t.number))})
  return len(study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED)))


def search(config: ml_collections.ConfigDict, workdir: str, trials: int,
           train: Callable[[ml_collections.ConfigDict, str], dict],
           metric: str, mode: str, space: dict | None = None) -> dict:
  """Runs the study to `trials` finished trials; returns and writes the best.

  `train(config, trial_dir)` is the experiment's training, returning its summary
  (`mean_sd`: metric -> (mean, sd)); `metric` / `mode` the resolved best metric.
  """
  if not metric:
    raise InputError("--mode=hpopt needs a validation split and --config.best_metric")
  optuna = _optuna()
  if space is None:  # warm-up is in epochs: searched only when task.epochs sets the steps
    space = {k: v for k, v in SPACE.items()
             if k != "task.warmup_epochs" or config.task.epochs > 0}
  os.makedirs(workdir, exist_ok=True)
  storage = "sqlite:///" + os.path.abspath(os.path.join(workdir, DB_FILE))
  direction = "minimize" if mode == "min" else "maximize"
  study = optuna.create_study(study_name=STUDY, storage=storage, direction=direction,
                              load_if_exists=True)
  done = _resume(study, optuna)
  # A fresh seed per command: a resumed study does not replay the first suggestions.
  study.sampler = optuna.samplers.TPESampler(seed=config.seed + len(study.trials))

  def objective(trial):
    params = suggest(trial, space)
    folder = trial.user_attrs.get("dir", str(trial.number))  # a requeued trial keeps its own
    trial.set_user_attr("dir", folder)
    summary = train(apply(config, params), os.path.join(workdir, "trials", folder))
    return summary["mean_sd"].get(metric, (float("nan"), 0.0))[0]

  if trials > done:
    # A diverging trial (NaN loss) is recorded as failed; the study goes on.
    study.optimize(objective, n_trials=trials - done, catch=(train_lib.NonFiniteLossError,))
  return write_best(study, config, workdir, metric)


def write_best(study, config, workdir: str, metric: str) -> dict:
  complete = _optuna().trial.TrialState.COMPLETE
  if not study.get_trials(deepcopy=False, states=(complete,)):
    raise InputError(f"--mode=hpopt: no trial finished in {workdir} (every one failed, e.g. "
                     "a NaN loss: see the log); rerun with more --hpopt_trials or a "
                     "narrower search space")
  best = study.best_trial
  out = {"metric": metric, "value": best.value, "trial": best.number,
         "trials_finished": len(study.get_trials(deepcopy=False, states=(complete,))),
         "params": best.params, "flags": as_flags(best.params),
         "config": apply(config, best.params).to_dict()}
  with open(os.path.join(workdir, BEST_FILE), "w", encoding="utf-8") as f:
    json.dump(out, f, indent=1, default=str)
  return out
