r"""EHR sequence models: in-hospital mortality from ICU time series or visit codes.

  python -m experiments.ehr --config=experiments/configs/ehr.py:quick --workdir=/tmp/ehr_quick
  python -m experiments.ehr --config=experiments/configs/ehr.py:p12_grud \
      --workdir=/tmp/p12_grud --mode=cv --folds=5        # 5-fold CV, mean +- sd
  python -m experiments.ehr --mode=evaluate --workdir=/tmp/p12_grud/fold_0 \
      --set_dir=/data/physionet2012/set-b --output_dir=/tmp/p12_grud_on_b
  python -m experiments.ehr --mode=explain --workdir=/tmp/ehr_quick \
      --config=experiments/configs/ehr.py --config.explain.examples=8   # -> explain/

Rerunning a training (or CV) command in the same workdir resumes it; a run stopped
by SIGTERM exits with code 75. Throughput: `python -m experiments.benchmark
--workloads=grud_synthetic`.
"""

import json

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from medjax.engine import distributed
from medjax.engine import runtime
from medjax.engine import workdir as workdir_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:preset].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (evaluate: the trained run).")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "cv", "evaluate", "explain"],
                          "What to do (explain: the trained --workdir's saved config; "
                          "only --config.explain.* and --config.mesh.* flags apply).")
_FOLDS = flags.DEFINE_integer("folds", 0, "cv: number of folds / repeats (0: config).")
_FOLD_IDS = flags.DEFINE_list("fold_ids", [], "cv: train only these folds (e.g. 3,4: one "
                               "process per core on one workdir); the summary covers "
                               "every finished fold.")
_SET_DIR = flags.DEFINE_string("set_dir", None, "evaluate: PhysioNet set directory.")
_OUTCOMES = flags.DEFINE_string("outcomes", "", "evaluate: outcomes file of --set_dir.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "evaluate: where results go.")
_PATIENT = flags.DEFINE_integer("patient", -1, "evaluate: stay id to explain (-1: the "
                                "highest-risk death); train: use --config.task.report_patient")
flags.mark_flags_as_required(["workdir"])


def _train(config, workdir):
  from medjax.engine import train  # pylint: disable=import-outside-toplevel
  from medjax.ehr import task as task_lib  # pylint: disable=import-outside-toplevel
  workdir_lib.save_config(workdir, config)
  task = distributed.process_zero_first(lambda: task_lib.EhrTask(
      config.task, batch_size=config.batch_size, workdir=workdir))
  return train.train_and_evaluate(config, workdir, task)


def _check_dirs():
  """Refuses a bad workdir / output dir before any data is read or model built."""
  if _MODE.value == "explain":
    workdir_lib.require_existing(_WORKDIR.value)
  elif _MODE.value == "evaluate":
    if not (_SET_DIR.value and _OUTPUT_DIR.value):
      raise app.UsageError("--mode=evaluate needs --set_dir and --output_dir")
    workdir_lib.require_existing(_WORKDIR.value)
    workdir_lib.require_existing(_SET_DIR.value, "--set_dir", "PhysioNet stay files")
    workdir_lib.require_writable(_OUTPUT_DIR.value, "--output_dir")
  else:
    workdir_lib.require_writable(_WORKDIR.value)


def _explain():
  from medjax.ehr import explanation  # pylint: disable=import-outside-toplevel
  from medjax.explain import mode  # pylint: disable=import-outside-toplevel
  overrides = mode.explain_overrides(flags.FLAGS, _CONFIG.value)
  config = mode.config_for_explain(_WORKDIR.value, overrides, _CONFIG.value)
  checks = explanation.explain_run(config, _WORKDIR.value)
  print("explain:", explanation.headline(checks))
  print("wrote", f"{_WORKDIR.value}/{mode.OUT_DIR}/")


def main(argv):
  runtime.start(argv)
  _check_dirs()
  from medjax.ehr import crossval, external  # pylint: disable=import-outside-toplevel
  if _MODE.value == "evaluate":
    metrics = external.evaluate_on_set(_WORKDIR.value, _SET_DIR.value, _OUTPUT_DIR.value,
                                       _OUTCOMES.value, patient=_PATIENT.value)
    print("external metrics:", json.dumps(metrics))
    return
  if _MODE.value == "explain":
    _explain()
    return
  config = _CONFIG.value
  if config is None:
    raise app.UsageError("--config is required for train and cv")
  from medjax.engine import train  # pylint: disable=import-outside-toplevel
  if _MODE.value == "cv":
    folds = _FOLDS.value or config.task.num_folds
    try:
      summary = crossval.run_folds(config, _WORKDIR.value, folds, _train,
                                   only=[int(k) for k in _FOLD_IDS.value])
    except crossval.Preempted as e:
      logging.warning("%s", e)
      raise SystemExit(train.EXIT_PREEMPTED) from e
    done = min(summary[m]["n"] for m in summary) if summary else 0
    print(f"{done} of {folds} runs ({config.task.split}):", crossval.format_summary(summary))
  else:
    results = _train(config, _WORKDIR.value)
    train.exit_if_preempted(results)
    logging.info("done")
    print("final metrics:", " ".join(f"{k}={v:.4f}" for k, v in sorted(results.items())))

if __name__ == "__main__":
  runtime.run(main)
