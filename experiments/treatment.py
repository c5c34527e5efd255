r"""Personalised treatment by reinforcement learning: PPO on T1D and ICU-sepsis simulators.

  python -m experiments.treatment --config=experiments/configs/treatment.py:quick \
      --workdir=/tmp/treatment_quick
  python -m experiments.treatment --config=experiments/configs/treatment.py:t1d_adult_ppo \
      --workdir=/tmp/t1d_adult_ppo
  python -m experiments.treatment --config=experiments/configs/treatment.py:sepsis_ppo \
      --workdir=/tmp/sepsis_ppo

Training runs on the shared engine (one step = one PPO update); the workdir gets
metrics.json, learning_curves.png, and the report: results.csv / results.md (the
held-out patients under PPO, basal-bolus and PID, or sepsis survival), bars.png
and traces.png. Rerunning a command in the same workdir resumes it; a run stopped
by SIGTERM exits with code 75. Simulator speed: `python -m experiments.benchmark
--mode=treatment`.
"""


from absl import flags
from absl import logging
from ml_collections import config_flags

from medjax.engine import runtime
from medjax.engine import workdir as workdir_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:preset].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.")
flags.mark_flags_as_required(["config", "workdir"])


def train(config, workdir):
  from medjax.engine import train as train_lib  # pylint: disable=import-outside-toplevel
  from medjax.treatment import task as task_lib  # pylint: disable=import-outside-toplevel
  workdir_lib.save_config(workdir, config)
  task = task_lib.TreatmentTask(config.task, config.batch_size)
  try:
    return train_lib.train_and_evaluate(config, workdir, task)
  except train_lib.NonFiniteLossError as e:
    if task.nonfinite is None:
      raise
    raise train_lib.NonFiniteLossError(f"{task.nonfinite}. {e}") from e


def main(argv):
  runtime.start(argv)
  workdir_lib.require_writable(_WORKDIR.value)
  from medjax.engine import train as train_lib  # pylint: disable=import-outside-toplevel
  results = train(_CONFIG.value, _WORKDIR.value)
  train_lib.exit_if_preempted(results)
  logging.info("done")
  print("final metrics:", " ".join(f"{k}={v:.4f}" for k, v in sorted(results.items())))


if __name__ == "__main__":
  runtime.run(main)
