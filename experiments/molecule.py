r"""Molecular property prediction: train (k seeds / folds), predict a CSV, benchmark.

  python -m experiments.molecule --config=experiments/configs/molecule.py:esol \
      --config.task.repeats=3 --workdir=/tmp/esol
  python -m experiments.molecule --config=experiments/configs/molecule.py:esol \
      --workdir=/tmp/esol --mode=predict --input_csv=new.csv --output_csv=/tmp/pred.csv
  python -m experiments.molecule --config=experiments/configs/molecule.py:esol \
      --workdir=/tmp/bench --mode=benchmark

With repeats > 1, run r trains in `workdir/run<r>` with seed + r and split_seed + r
(fold r when task.folds > 1); the mean and sd go to `workdir/summary.json`. Predict
uses every trained run under --workdir (or --predict_workdirs) as an ensemble.
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
_MODE = flags.DEFINE_enum("mode", "train", ["train", "predict", "benchmark"], "What to do.")
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
  from medjax.engine import train as train_lib  # pylint: disable=import-outside-toplevel
  # pylint: disable-next=import-outside-toplevel
  from medjax.molecule import metrics, task as task_lib
  dataset = distributed.process_zero_first(lambda: task_lib.load_dataset(config.task))
  runs, repeats = [], config.task.repeats
  for r in range(repeats):
    c, run_dir = run_config(config, r), workdir if repeats == 1 else f"{workdir}/run{r}"
    task = task_lib.MoleculeTask(c.task, c.batch_size, dataset)
    task_lib.resolve_best_metric(c, task)  # before training: a bad name stops here
    task.write_run_files(run_dir)
    workdir_lib.save_config(run_dir, c)
    runs.append(train_lib.train_and_evaluate(c, run_dir, task))
    train_lib.exit_if_preempted(runs[-1])
  summary = metrics.summarize(runs)
  with open(os.path.join(workdir, "summary.json"), "w", encoding="utf-8") as f:
    json.dump({"runs": runs, "mean_sd": summary}, f, indent=1)
  for k, (mean, sd) in summary.items():
    if k.startswith("test/") and k.count("/") == 1:
      print(f"{k} = {mean:.4f} +- {sd:.4f}  ({repeats} runs)")


def _check_dirs():
  """Refuses a bad workdir / output file before any data is read or model built."""
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
  else:
    train(config, workdir)


if __name__ == "__main__":
  runtime.run(main)
