r"""DP-SGD step cost: the engine's train step with and without `config.privacy`.

  MEDJAX_SHARED_DATA=../shared/data python -m experiments.dp_step_cost \
      --workloads=grud_p12,dmpnn_esol --steps=10

Each workload is an experiment preset on its real training data (GRU-D on PhysioNet
2012 set-a fold 0; D-MPNN on ESOL). Non-private steps take the task's own batches of
`batch_size`; private ones Poisson batches of `batch_size` expected examples padded
to the auto capacity (one molecule per block for the D-MPNN), epsilon 3 at delta
1e-5. Prints the median seconds per step (after one compiling step) and the ratio.
"""

import statistics
import time

import jax
import numpy as np
from absl import app
from absl import flags

from medjax.engine import mesh as mesh_lib
from medjax.engine import steps as steps_lib

_WORKLOADS = flags.DEFINE_list("workloads", ["grud_p12", "dmpnn_esol"], "Which.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps per setting.")


def _config_and_task(name):
  if name == "grud_p12":
    from experiments.configs import ehr  # pylint: disable=import-outside-toplevel
    from medjax.ehr import task as ehr_task  # pylint: disable=import-outside-toplevel
    config = ehr.get_config("p12_grud")
    return config, ehr_task.EhrTask(config.task, batch_size=config.batch_size)
  if name == "dmpnn_esol":
    from experiments.configs import molecule  # pylint: disable=import-outside-toplevel
    from medjax.molecule import task as mol_task  # pylint: disable=import-outside-toplevel
    config = molecule.get_config("esol")
    return config, mol_task.MoleculeTask(config.task, config.batch_size)
  raise app.UsageError(f"--workloads: unknown {name!r} (grud_p12, dmpnn_esol)")


def time_setting(name, private: bool, steps: int):
  """(median seconds per step, example slots per step)."""
  from medjax.privacy.dp import training  # pylint: disable=import-outside-toplevel
  config, task = _config_and_task(name)
  mesh = mesh_lib.make_mesh(config.mesh)
  dp = None
  if private:
    config.privacy.update(dict(enabled=True, target_epsilon=3.0))
    dp = training.PrivateTraining(config, task, "", mesh_lib.batch_divisor(mesh))
  state, train_step, _ = steps_lib.build(task, config, mesh,
                                         grad_rule=dp.grad_rule() if dp else None)
  data = (dp.train_iterator(config.seed) if dp else
          iter(task.train_dataset(config.batch_size, config.seed)))
  batches = [mesh_lib.shard_batch(next(data), mesh) for _ in range(steps + 1)]
  state, metrics = train_step(state, batches[0])
  jax.block_until_ready(metrics)
  times = []
  for batch in batches[1:]:
    start = time.perf_counter()
    state, metrics = train_step(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  return statistics.median(times), int(np.prod(batches[0]["_mask"].shape))


def main(argv):
  del argv
  print("| workload | example slots/step (non-private / DP) | s/step non-private | s/step DP | ratio |")
  print("|---|---|---|---|---|")
  for name in _WORKLOADS.value:
    plain, plain_rows = time_setting(name, False, _STEPS.value)
    private, dp_rows = time_setting(name, True, _STEPS.value)
    print(f"| {name} | {plain_rows} / {dp_rows} | {plain:.4f} | {private:.4f} | "
          f"{private / plain:.1f}x |", flush=True)


if __name__ == "__main__":
  app.run(main)
