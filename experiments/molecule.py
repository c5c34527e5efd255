r"""Molecular property prediction: train (k seeds / folds), predict a CSV, benchmark.

  python -m experiments.molecule --config=experiments/configs/molecule.py:esol \
      --config.task.repeats=3 --workdir=/tmp/esol
  python -m experiments.molecule --config=experiments/configs/molecule.py:esol \
      --workdir=/tmp/esol --mode=predict --input_csv=new.csv --output_csv=/tmp/pred.csv
  python -m experiments.molecule --config=experiments/configs/molecule.py:esol \
      --workdir=/tmp/bench --mode=benchmark
  python -m experiments.molecule --config=experiments/configs/molecule.py:esol \
      --workdir=/tmp/esol --mode=explain --config.explain.examples=8
  python -m experiments.molecule --config=experiments/configs/molecule.py:bbbp \
      --workdir=/tmp/bbbp_hpopt --mode=hpopt --hpopt_trials=20

With repeats > 1, run r trains in `workdir/run<r>` with seed + r and split_seed + r
(fold r when task.folds > 1); the mean and sd go to `workdir/summary.json`. Predict
uses every trained run under --workdir (or --predict_workdirs) as an ensemble.
With task.ensemble_size = N > 1 each run trains N models (seed + 1000 k) on its split
in `member<k>/`; its val / test metrics score their mean prediction, beside
`members_mean/...` (`medjax/molecule/ensemble.py`). Hpopt runs Optuna trials of this
training in `workdir/trials/<n>`, resumably (`medjax/molecule/hpopt.py`).
Explain reads the run's saved config (only `--config.explain.*` and mesh flags apply) and
writes atom / bond attribution figures and the trust checks to `workdir/explain/`
(`medjax/molecule/explanation.py`); with repeats, the first run is explained.
"""

import copy
import json
import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from medjax.engine import distributed
from medjax.engine import runtime
from medjax.engine import workdir as workdir_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:preset].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.")
_MODE = flags.DEFINE_enum("mode", "train",
                          ["train", "predict", "benchmark", "explain", "hpopt"], "What to do.")
_HPOPT_TRIALS = flags.DEFINE_integer("hpopt_trials", 20,
                                     "hpopt: finished trials the study runs to.")
_INPUT_CSV = flags.DEFINE_string("input_csv", None, "predict: CSV of SMILES.")
_SMILES_COLUMN = flags.DEFINE_string("smiles_column", "smiles", "predict: SMILES column.")
_OUTPUT_CSV = flags.DEFINE_string("output_csv", None, "predict: where predictions go.")
_PREDICT_WORKDIRS = flags.DEFINE_list("predict_workdirs", None,
                                      "predict: trained workdirs (default --workdir).")
flags.mark_flags_as_required(["config", "workdir"])


def run_config(config, r: int):
  c = copy.deepcopy(config)
  c.seed = config.seed + r
  if config.task.folds > 1:
    c.task.fold = (config.task.fold + r) % config.task.folds
  else:
    c.task.split_seed = config.task.split_seed + r
  return c


def train(config, workdir):
  """Trains the runs (repeats; each a model or an ensemble); returns the summary."""
  # pylint: disable-next=import-outside-toplevel
  from medjax.molecule import metrics, task as task_lib, training
  dataset = distributed.process_zero_first(lambda: task_lib.load_dataset(config.task))
  runs, repeats = [], config.task.repeats
  for r in range(repeats):
    c, run_dir = run_config(config, r), workdir if repeats == 1 else f"{workdir}/run{r}"
    runs.append(training.train_run(c, run_dir, dataset))
  summary = metrics.summarize(runs)
  with open(os.path.join(workdir, "summary.json"), "w", encoding="utf-8") as f:
    json.dump({"runs": runs, "mean_sd": summary}, f, indent=1)
  for k, (mean, sd) in summary.items():
    head = k.removeprefix("members_mean/")  # an ensemble's members' mean score
    if head.startswith("test/") and head.count("/") == 1:
      print(f"{k} = {mean:.4f} +- {sd:.4f}  ({repeats} runs)")
  return {"runs": runs, "mean_sd": summary}


def hpopt(config, workdir: str) -> dict:
  """Optuna search over the D-MPNN recipe, each trial a `train` run in
  workdir/trials/<n>; resumable (workdir/hpopt.db); prints the best as flags."""
  # pylint: disable-next=import-outside-toplevel
  from medjax.molecule import hpopt as hpopt_lib, task as task_lib, training
  probe = copy.deepcopy(config)  # resolves best_metric / best_mode as training will
  training.prepare(probe, task_lib.load_dataset(probe.task))
  best = hpopt_lib.search(config, workdir, _HPOPT_TRIALS.value, train, probe.best_metric,
                          probe.best_mode)
  print(f"best of {best['trials_finished']} trials: {best['metric']} = {best['value']:.4f} "
        f"(trial {best['trial']}, {os.path.join(workdir, hpopt_lib.BEST_FILE)})")
  print(" ".join(best["flags"]))
  return best


def explain_config(config, workdir: str, overrides: dict | None = None):
  """(the run's saved config with `overrides` (`--config.explain.*`) and this command's
  mesh, the run's dir: `workdir`, or its first run<r>/ with repeats)."""
  # pylint: disable-next=import-outside-toplevel
  from medjax.explain import mode
  from medjax.molecule import predict  # pylint: disable=import-outside-toplevel
  run_dir = predict.run_dirs([workdir])[0]
  return mode.config_for_explain(run_dir, overrides, config), run_dir


def explain(config, workdir: str, overrides: dict | None = None) -> dict:
  """Explains a trained run's chosen molecules (`overrides`: the explain fields given,
  by default the `--config.explain.*` flags); prints the headline numbers."""
  # pylint: disable-next=import-outside-toplevel
  from medjax.explain import mode
  from medjax.molecule import explanation, task as task_lib
  if overrides is None:
    overrides = mode.explain_overrides(flags.FLAGS, config)
  saved, run_dir = explain_config(config, workdir, overrides)
  task = task_lib.MoleculeTask(saved.task, saved.batch_size)
  result = explanation.explain(saved, run_dir, task)
  for part, numbers in result["summary"].items():
    print(f"{part} ({numbers['molecules']} molecules, {result['method']}): IG completeness "
          f"gap {numbers['relative_gap_mean']:.2%}, randomisation rho(|attr|) "
          f"{numbers['rho_abs']:.3f}, deletion AUC {numbers['deletion_auc']:.4g} vs random "
          f"{numbers['random_deletion_auc']:.4g}, insertion AUC {numbers['insertion_auc']:.4g} "
          f"vs random {numbers['random_insertion_auc']:.4g}")
  print(f"figures and {mode.CHECKS_FILE} in {os.path.join(run_dir, mode.OUT_DIR)}")
  return result


def _check_dirs():
  """Refuses a bad workdir / output file before any data is read or model built."""
  if _MODE.value == "explain":
    workdir_lib.require_existing(_WORKDIR.value)
  if _MODE.value != "predict":
    workdir_lib.require_writable(_WORKDIR.value)
    return
  flag = "--predict_workdirs" if _PREDICT_WORKDIRS.value else "--workdir"
  for run_dir in _PREDICT_WORKDIRS.value or [_WORKDIR.value]:
    workdir_lib.require_existing(run_dir, flag)
  if _OUTPUT_CSV.value:
    workdir_lib.require_output_file(_OUTPUT_CSV.value, "--output_csv")


def main(argv):
  runtime.start(argv)
  _check_dirs()
  config, workdir = _CONFIG.value, _WORKDIR.value
  if _MODE.value == "predict":
    from medjax.molecule import predict  # pylint: disable=import-outside-toplevel
    if not (_INPUT_CSV.value and _OUTPUT_CSV.value):
      raise app.UsageError("--mode=predict needs --input_csv and --output_csv")
    table = predict.predict_csv(_PREDICT_WORKDIRS.value or [workdir], _INPUT_CSV.value,
                                _OUTPUT_CSV.value, _SMILES_COLUMN.value)
    logging.info("wrote %d rows (%d invalid SMILES) to %s", len(table),
                 int((table["valid"] == 0).sum()), _OUTPUT_CSV.value)
  elif _MODE.value == "benchmark":
    # pylint: disable-next=import-outside-toplevel
    from medjax.molecule import benchmark, task as task_lib
    task = task_lib.MoleculeTask(config.task, config.batch_size)
    results = {**benchmark.featurization(task.data.smiles),
               **benchmark.training(config, task)}
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "benchmark.json"), "w", encoding="utf-8") as f:
      json.dump(results, f, indent=1)
    print("\n".join(f"{k} = {v:.4g}" for k, v in results.items()))
  elif _MODE.value == "explain":
    explain(config, workdir)
  elif _MODE.value == "hpopt":
    hpopt(config, workdir)
  else:
    train(config, workdir)


if __name__ == "__main__":
  runtime.run(main)
