"""One training run of experiments/molecule.py: a model, or an ensemble of
`task.ensemble_size` members (seeds) on the run's split, in `run_dir/member<k>`."""

from __future__ import annotations

from medjax.engine import train as train_lib
from medjax.engine import workdir as workdir_lib
from medjax.molecule import ensemble, schedule
from medjax.molecule import task as task_lib


def prepare(config, dataset) -> task_lib.MoleculeTask:
  """The run's task; sets the step counts from task.epochs (if > 0) and the best
  metric (before training: a bad name stops here)."""
  task = task_lib.MoleculeTask(config.task, config.batch_size, dataset)
  schedule.apply_epochs(config, len(task.split["train"]))
  task_lib.resolve_best_metric(config, task)
  return task


def _train_one(config, workdir: str, task) -> dict[str, float]:
  task.write_run_files(workdir)
  workdir_lib.save_config(workdir, config)
  results = train_lib.train_and_evaluate(config, workdir, task)
  train_lib.exit_if_preempted(results)
  return results


def train_run(config, run_dir: str, dataset) -> dict[str, float]:
  """Trains the run; returns its final metrics (the ensemble's, with
  `members_mean/...` beside them, when task.ensemble_size > 1)."""
  task = prepare(config, dataset)
  if config.task.ensemble_size <= 1:
    return _train_one(config, run_dir, task)
  workdir_lib.save_config(run_dir, config)
  members = []
  for k, member_dir in enumerate(ensemble.member_dirs(run_dir, config.task.ensemble_size)):
    member = ensemble.member_config(config, k)
    _train_one(member, member_dir, task)
    members.append((member, member_dir))
  return ensemble.evaluate(members, task, run_dir)
