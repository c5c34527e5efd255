r"""Wall time to a validation Dice: medjax U-Net, medjax residual U-Net, MONAI UNet.

Each model trains in its own process on the same prepared data, crops,
augmentation, loss (Dice + CE) and optimiser (the preset's AdamW and schedule),
and is evaluated on the validation split every --eval_every steps:

* unet, resunet: the normal segmentation experiment (`train.train_and_evaluate`)
  with `task.model.name` unet / resunet (instance norm + PReLU, MONAI's
  defaults); the evaluators are timed so that their time can be left out;
* monai: `monai.networks.nets.UNet` with the same channels, strides 2 and 2
  residual units, trained by PyTorch's own loop (experiments/bench/peers/
  monai_time_to_dice.py, run by --peer_python) on the same data, exported once
  here to .npy.

"Seconds" are training wall time from the start of the loop (first-step
compilation included), evaluation time excluded. A run stops at --max_seconds
or once the highest target is reached. Lung CT (targets 0.96, 0.97 on val/dice):

  python -m experiments.bench.time_to_dice \
      --config=experiments/configs/segmentation.py:lung_ct \
      --config.task.raw_dir=../shared/data/lung_ct_2d --targets=0.96,0.97 \
      --eval_every=50 --max_seconds=3600 --workdir=/tmp/time_to_dice_lung

DRIVE: `--config=...:drive --config.task.raw_dir=... --targets=0.80`
(metric val/pooled_f1, the preset's best_metric). Prints a table and writes
`<workdir>/time_to_dice.json`. Each medjax model's folder keeps its config, run files
and last checkpoint, so `experiments.segmentation --mode=evaluate/predict` can use it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

from absl import flags
from absl import logging
from ml_collections import config_flags
import numpy as np

from medjax.engine import runtime
from medjax.engine import workdir as workdir_lib
from medjax.engine.errors import InputError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Segmentation config[:preset].",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Base directory: one sub-folder per model.")
_MODELS = flags.DEFINE_list("models", ["unet", "resunet", "monai"], "unet, resunet, monai.")
_TARGETS = flags.DEFINE_list("targets", ["0.96", "0.97"], "Validation metric levels.")
_METRIC = flags.DEFINE_string("metric", "", "Metric to reach; default the preset's "
                              "best_metric (val/dice, val/pooled_f1).")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 50, "Steps between evaluations.")
_MAX_SECONDS = flags.DEFINE_float("max_seconds", 3600.0, "Training seconds per model.")
_PEER_PYTHON = flags.DEFINE_string("peer_python", "/work/peers/bin/python",
                                   "Python with torch + monai (for --models=monai).")
_THREADS = flags.DEFINE_integer("threads", 2, "PyTorch threads.")
_CHILD = flags.DEFINE_string("child", "", "Internal: train this medjax model here.")
flags.mark_flags_as_required(["config", "workdir"])

RESULT = "time_to_dice.json"


def model_config(config, model: str):
  """The preset's config for `model` ('unet' as it is; 'resunet' MONAI-like)."""
  config = config.copy_and_resolve_references()
  if model == "resunet":
    config.task.model.name = "resunet"
    config.task.model.norm = "instance"
    config.task.model.strides = ()
    config.task.model.num_res_units = 2
  config.task.hd95 = False  # evaluation time is left out, but keep it short
  config.task.report_images = 0
  config.eval_every = _EVAL_EVERY.value
  config.checkpoint_every = 0
  config.best_metric = ""
  return config


def metric_name() -> str:
  """--metric, else the preset's best_metric (`model_config` clears it for the runs)."""
  return _METRIC.value or _CONFIG.value.best_metric or "val/dice"


class _TimedEvaluator:
  """An evaluator whose runs are timed; stops training when done (SIGTERM)."""

  def __init__(self, inner, clock):
    self._inner, self._clock = inner, clock

  def __getattr__(self, name):
    return getattr(self._inner, name)

  def run(self, predict_fn):
    started = time.perf_counter()
    results = dict(self._inner.run(predict_fn))
    self._clock.record(self._inner.name, results, started, time.perf_counter())
    yield from results.items()


class _Clock:
  """Training seconds (evaluations left out) at each evaluation -> rows."""

  def __init__(self, metric, stop_at, max_seconds, total_steps, path):
    self.metric, self.stop_at, self.max_seconds, self.path = metric, stop_at, max_seconds, path
    self.total_steps = total_steps
    self.t0, self.eval_seconds, self.rows, self.step = time.perf_counter(), 0.0, [], 0

  def record(self, split, results, started, ended):
    if not self.metric.startswith(split + "/"):
      return
    self.step = min(self.step + _EVAL_EVERY.value, self.total_steps)
    value = float(results[self.metric.split("/", 1)[1]])
    train_seconds = started - self.t0 - self.eval_seconds
    self.eval_seconds += ended - started
    self.rows.append(dict(step=self.step, train_seconds=train_seconds, value=value,
                          eval_seconds=ended - started))
    logging.info("time_to_dice: step %d, %.1f s training, %s=%.4f", self.step,
                 train_seconds, self.metric, value)
    with open(self.path, "w", encoding="utf-8") as f:
      json.dump({"metric": self.metric, "rows": self.rows}, f, indent=1)
    if value >= self.stop_at or train_seconds >= self.max_seconds:
      os.kill(os.getpid(), signal.SIGTERM)  # the engine stops after its next step


def run_child(model: str, workdir: str):
  """One medjax model through the segmentation engine, evaluations timed."""
  from medjax.engine import train  # pylint: disable=import-outside-toplevel
  from medjax.segmentation import task as task_lib  # pylint: disable=import-outside-toplevel
  config = model_config(_CONFIG.value, model)
  task = task_lib.make_task(config.task, config.compute_dtype)
  task.prepare()
  os.makedirs(workdir, exist_ok=True)
  workdir_lib.save_config(workdir, config)  # predict / evaluate modes read them back
  task.write_run_files(workdir)
  clock = _Clock(metric_name(), max(map(float, _TARGETS.value)), _MAX_SECONDS.value,
                 config.total_steps, os.path.join(workdir, RESULT))
  evaluators = task.evaluators
  task.evaluators = lambda: [_TimedEvaluator(e, clock) for e in evaluators()]
  clock.t0 = time.perf_counter()
  train.train_and_evaluate(config, workdir, task)


def export_data(config, out_dir: str) -> str:
  """The preprocessed train / val arrays (and training settings) for the peer."""
  from medjax.segmentation import task as task_lib  # pylint: disable=import-outside-toplevel
  path = os.path.join(out_dir, "data")
  os.makedirs(path, exist_ok=True)
  task = task_lib.make_task(config.task, config.compute_dtype)
  splits = {"train": task.train_source, "val": task.eval_sources["val"]}
  for split, source in splits.items():
    examples = [task.preprocess(source[i]) for i in range(len(source))]
    for key in ("image", "label", "valid"):
      np.save(os.path.join(path, f"{split}_{key}.npy"), np.stack([e[key] for e in examples]))
  t, o = config.task, config.optimizer
  settings = dict(num_classes=t.num_classes, features=list(t.model.features),
                  patch_size=list(t.patch_size), augment=t.augment.to_dict(),
                  dice_weight=t.dice_weight, loss=t.loss,
                  roi=list(t.sliding_window.roi), overlap=t.sliding_window.overlap,
                  sw_batch_size=t.sliding_window.batch_size,
                  batch_size=config.batch_size, total_steps=config.total_steps,
                  seed=config.seed, optimizer=o.to_dict(), eval_batch_size=t.eval_batch_size)
  with open(os.path.join(path, "settings.json"), "w", encoding="utf-8") as f:
    json.dump(settings, f, indent=1)
  return path


def _child_argv(model: str, workdir: str) -> list[str]:
  args = [a for a in sys.argv[1:] if not a.startswith(("--child", "--workdir"))]
  return [sys.executable, "-m", "experiments.bench.time_to_dice", *args,
          f"--child={model}", f"--workdir={workdir}"]


def _run_model(model, data_dir):
  workdir = os.path.join(_WORKDIR.value, model)
  shutil.rmtree(workdir, ignore_errors=True)  # a fresh run: no resuming from a checkpoint
  if model == "monai":
    peer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers",
                        "monai_time_to_dice.py")
    cmd = [_PEER_PYTHON.value, peer, f"--data={data_dir}", f"--out={workdir}",
           f"--eval_every={_EVAL_EVERY.value}", f"--max_seconds={_MAX_SECONDS.value}",
           f"--stop_at={max(map(float, _TARGETS.value))}", f"--metric={metric_name()}",
           f"--threads={_THREADS.value}"]
  else:
    cmd = _child_argv(model, workdir)
  logging.info("time_to_dice: %s", " ".join(cmd))
  started = time.perf_counter()
  subprocess.run(cmd, check=False)
  path = os.path.join(workdir, RESULT)
  if not os.path.exists(path):
    return {"rows": [], "process_seconds": time.perf_counter() - started}
  with open(path, encoding="utf-8") as f:
    return {**json.load(f), "process_seconds": time.perf_counter() - started}


def table(results: dict, targets: list[float]) -> str:
  lines = ["| model | " + " | ".join(f"s to {t:g}" for t in targets)
           + " | best (step) | evals |", "|---" * (len(targets) + 3) + "|"]
  for model, result in results.items():
    rows, cells = result["rows"], []
    for target in targets:
      hit = next((r for r in rows if r["value"] >= target), None)
      last = rows[-1]["train_seconds"] if rows else 0.0
      cells.append(f"{hit['train_seconds']:.0f} (step {hit['step']})" if hit
                   else f"not reached in {last:.0f} s")
    best = max(rows, key=lambda r: r["value"]) if rows else None
    best_cell = f"{best['value']:.4f} ({best['step']})" if best else "-"
    lines.append(f"| {model} | " + " | ".join(cells) + f" | {best_cell} | {len(rows)} |")
  return "\n".join(lines)


def main(argv):
  runtime.start(argv)
  if _CHILD.value:
    run_child(_CHILD.value, _WORKDIR.value)
    return
  unknown = set(_MODELS.value) - {"unet", "resunet", "monai"}
  if unknown:
    raise InputError(f"--models: unknown {sorted(unknown)} (known: unet, resunet, monai)")
  if "monai" in _MODELS.value and not os.path.exists(_PEER_PYTHON.value):
    raise InputError(f"--peer_python={_PEER_PYTHON.value} does not exist: give a Python with "
                     "torch + monai (experiments/bench/peers/requirements.txt)")
  config = model_config(_CONFIG.value, "unet")
  os.makedirs(_WORKDIR.value, exist_ok=True)
  data_dir = export_data(config, _WORKDIR.value) if "monai" in _MODELS.value else ""
  results = {m: _run_model(m, data_dir) for m in _MODELS.value}
  targets = [float(t) for t in _TARGETS.value]
  with open(os.path.join(_WORKDIR.value, RESULT), "w", encoding="utf-8") as f:
    json.dump(results, f, indent=1)
  print(f"{metric_name()}: training seconds to each level (evaluations excluded)")
  print(table(results, targets))


if __name__ == "__main__":
  runtime.run(main)
