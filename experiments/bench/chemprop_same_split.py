r"""Chemprop on the exact split of a medjax molecule run, scored by the same metric code.

For each run directory (a finished `experiments/molecule.py` run: its `config.json` and
`split.csv`), writes the run's molecules with their labels and a `split` column, trains
`chemprop train` (its defaults unless `--chemprop_args`) on that split, predicts the
test molecules with the trained model and scores both tools' test predictions with
`medjax.molecule.metrics`:

  python -m experiments.bench.chemprop_same_split \
      --run_dirs=W/run0,W/run1,W/run2 --out_dir=W_chemprop

`--chemprop` is the CLI of a Python with `experiments/bench/peers/requirements.txt`.
Prints a table (mean +- sd over the runs) and writes `<out_dir>/summary.json`; a run
whose `test_predictions.csv` exists is reused (rerun to resume).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess

from absl import app
from absl import flags
import ml_collections
import numpy as np
import pandas as pd

from medjax.engine.errors import InputError


def define_flags():
  flags.DEFINE_list("run_dirs", None, "medjax molecule run directories (config.json, "
                    "split.csv, test_predictions.csv).")
  flags.DEFINE_string("out_dir", None, "Where Chemprop's runs go (one folder per run).")
  flags.DEFINE_string("chemprop", "/work/peers/bin/chemprop", "The chemprop CLI.")
  flags.DEFINE_string("chemprop_args", "", "Extra `chemprop train` arguments, e.g. "
                      "'--epochs 30'.")
  flags.DEFINE_integer("threads", 1, "Torch threads (OMP_NUM_THREADS) for Chemprop.")


def run_task(run_dir: str):
  """The task (its dataset and split) of a finished medjax run."""
  # pylint: disable-next=import-outside-toplevel
  from medjax.molecule import task as task_lib
  path = os.path.join(run_dir, "config.json")
  if not os.path.exists(path):
    raise InputError(f"--run_dirs: {run_dir} has no config.json (not a molecule run?)")
  with open(path) as f:
    cfg = ml_collections.ConfigDict(json.load(f)).task
  task = task_lib.MoleculeTask(cfg, batch_size=8)
  saved = pd.read_csv(os.path.join(run_dir, "split.csv"), keep_default_na=False)
  rows = {name: sorted(task.data.rows[ids]) for name, ids in task.split.items()}
  for name, want in rows.items():  # the split rebuilt from the config is the run's
    if list(saved.loc[saved["split"] == name, "row"]) != want:
      raise InputError(f"{run_dir}/split.csv: the {name} split differs from the one "
                       "its config.json rebuilds")
  return task


def write_chemprop_input(task, path: str) -> list[str]:
  """CSV of the run's molecules (smiles, targets, split); returns the target columns."""
  ids = np.concatenate([task.split[k] for k in ("train", "val", "test")])
  names = [k for k in ("train", "val", "test") for _ in task.split[k]]
  targets = [f"t{j}" for j in range(len(task.task_names))]  # no commas in names
  frame = pd.DataFrame({"smiles": [task.data.smiles[i] for i in ids], "split": names})
  for j, column in enumerate(targets):
    frame[column] = task.data.targets[ids, j]
  frame.to_csv(path, index=False)
  return targets


def chemprop_commands(args, data: str, test: str, targets, out: str) -> list[list[str]]:
  kind = "regression" if args["task_type"] == "regression" else "classification"
  train = [args["cli"], "train", "-i", data, "-s", "smiles", "--target-columns", *targets,
           "--splits-column", "split", "-t", kind, "--num-workers", "0", "-o", out,
           *shlex.split(args["extra"])]
  predict = [args["cli"], "predict", "-i", test, "-s", "smiles", "--num-workers", "0",
             "--model-paths", out, "-o", os.path.join(out, "test_predictions.csv")]
  return [train, predict]


def score(task, predictions: np.ndarray) -> dict[str, float]:
  return {f"test/{k}": v for k, v in task.score(task.split["test"], predictions).items()}


def chemprop_run(task, run_dir: str, out: str, args) -> dict[str, float]:
  """Trains and predicts with Chemprop in `out`; its test scores."""
  os.makedirs(out, exist_ok=True)
  data, test = os.path.join(out, "data.csv"), os.path.join(out, "test.csv")
  targets = write_chemprop_input(task, data)
  frame = pd.read_csv(data)
  frame[frame["split"] == "test"][["smiles"]].to_csv(test, index=False)
  env = dict(os.environ, OMP_NUM_THREADS=str(args["threads"]))
  done = os.path.join(out, "test_predictions.csv")
  commands = chemprop_commands(dict(args, task_type=task.task_type), data, test, targets,
                               out)
  for cmd in [] if os.path.exists(done) else commands:  # a finished run is reused
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if result.returncode:
      raise RuntimeError(f"{shlex.join(cmd)} failed:\n{result.stderr[-3000:]}")
  preds = pd.read_csv(done)
  return score(task, preds[targets].to_numpy(np.float64))


def medjax_scores(task, run_dir: str) -> dict[str, float]:
  preds = pd.read_csv(os.path.join(run_dir, "test_predictions.csv"))
  return score(task, preds[[f"{n}_pred" for n in task.task_names]].to_numpy(np.float64))


def summary_table(rows: list[dict], metric: str) -> str:
  lines = [f"| tool | test {metric}, mean +- sd ({len(rows)} runs) | per run |", "|---|---|---|"]
  for tool in ("medjax", "chemprop"):
    v = np.array([r[tool][f"test/{metric}"] for r in rows])
    sd = v.std(ddof=1) if len(v) > 1 else 0.0
    lines.append(f"| {tool} | {v.mean():.4f} +- {sd:.4f} | "
                 + ", ".join(f"{x:.4f}" for x in v) + " |")
  return "\n".join(lines)


def main(argv):
  del argv
  f = flags.FLAGS
  if not os.path.exists(f.chemprop):
    raise InputError(f"--chemprop={f.chemprop} does not exist: install "
                     "experiments/bench/peers/requirements.txt in a separate venv")
  args = {"cli": f.chemprop, "extra": f.chemprop_args, "threads": f.threads}
  rows = []
  for k, run_dir in enumerate(f.run_dirs):
    task = run_task(run_dir)
    rows.append({"run_dir": run_dir, "medjax": medjax_scores(task, run_dir),
                 "chemprop": chemprop_run(task, run_dir, os.path.join(f.out_dir, f"run{k}"),
                                          args)})
  metric = "rmse" if task.task_type == "regression" else "roc_auc"
  with open(os.path.join(f.out_dir, "summary.json"), "w") as fh:
    json.dump({"chemprop_args": f.chemprop_args, "runs": rows}, fh, indent=1)
  print(summary_table(rows, metric))


if __name__ == "__main__":
  define_flags()
  flags.mark_flags_as_required(["run_dirs", "out_dir"])
  from medjax.engine import runtime  # pylint: disable=import-outside-toplevel
  runtime.run(main)
