"""What every task's `--mode=explain` shares: its config, the examples, the files written.

    config = mode.config_for_explain(flag_config, workdir)  # the run's config + explain flags
    indices = mode.example_indices(config.explain, len(source))
    ...attributions and checks (`report.explain_and_check`)...
    headline = mode.write_checks(checks, out_dir, extra)    # checks.json + faithfulness.png
"""

from __future__ import annotations

import os

from absl import logging
import jax
import numpy as np

from medjax.engine import checkpoint as checkpoint_lib
from medjax.engine import mesh as mesh_lib
from medjax.engine import steps
from medjax.engine import workdir as workdir_lib
from medjax.engine.errors import InputError
from medjax.explain import figures
from medjax.explain import loading
from medjax.explain import report

OUT_DIR = "explain"  # under the workdir
CHECKS_FILE = "checks.json"
CURVES_FILE = "faithfulness.png"


def config_for_explain(flag_config, workdir: str):
  """The run's saved config (`config.json`) with `explain` and `mesh` from `flag_config`.

  The model, data and optimiser (whose state the checkpoint holds) are the trained
  ones; the explain fields and the device mesh are this command's. A workdir without
  a saved config (older runs) gives `flag_config`, logged.
  """
  saved = workdir_lib.load_config(workdir)
  if saved is None:
    logging.warning("%s has no %s: explaining with the command line's config", workdir,
                    workdir_lib.CONFIG_FILE)
    return flag_config
  with saved.unlocked():
    saved.explain = flag_config.explain.copy_and_resolve_references()
    saved.mesh = flag_config.mesh.copy_and_resolve_references()
  return saved


def trained_and_random(config, workdir: str, task, seed: int):
  """(best-checkpoint variables, the model initialised afresh with `seed`).

  As `loading.trained_and_random`, but the twin is the engine's own initial state
  (`steps.create_state`, the init training starts from, under another seed), which
  the restore needs anyway: one init compiled, not two (each ~10-30 s on a CPU).
  """
  mesh = mesh_lib.make_mesh(config.mesh)
  tx, _ = task.optimizer(config.optimizer, config.total_steps)
  fresh, _, abstract = steps.create_state(task, tx, task.example_batch(1), mesh, seed,
                                          config.logical_axis_rules)
  state = checkpoint_lib.restore_state(workdir, abstract, prefer_best=True)
  return loading.variables_of(state), loading.variables_of(fresh)


def model_apply(task, batch: dict, input_key: str):
  """`loading.model_apply` with its input behind `lax.optimization_barrier`.

  `report` closes over the variables, so they are constants of each jitted method, and
  on a constant input (the baseline's score in integrated gradients) XLA would
  constant-fold the whole model when compiling (~10 s for a small U-Net on 96^2
  pixels, per compile); the barrier stops that and changes no value or gradient.
  """
  apply = loading.model_apply(task, batch, input_key)
  return lambda variables, x, **kw: apply(variables, jax.lax.optimization_barrier(x), **kw)


def example_indices(explain_config, size: int) -> list[int]:
  """Positions in the split: `indices` when given, else the first `examples`."""
  split = explain_config.split
  if size == 0:
    raise InputError(f"--config.explain.split={split} has no examples")
  if explain_config.indices:
    indices = [int(i) for i in explain_config.indices]
    bad = [i for i in indices if not 0 <= i < size]
    if bad:
      raise InputError(f"--config.explain.indices: {bad} outside split {split!r} "
                       f"({size} examples: 0..{size - 1})")
    return indices
  if explain_config.examples < 1:
    raise InputError(f"--config.explain.examples must be >= 1, got {explain_config.examples}")
  return list(range(min(int(explain_config.examples), size)))


def check_target(target: int, num_outputs: int, what: str = "class") -> int:
  """`target` when in [0, num_outputs), -1 as is; else InputError naming the flag."""
  target = int(target)
  if target != -1 and not 0 <= target < num_outputs:
    raise InputError(f"--config.explain.target={target}: the model has {num_outputs} "
                     f"{what}es (0..{num_outputs - 1}); -1 explains the predicted one")
  return target


def channel_sum(attributions) -> np.ndarray:
  """(B, *spatial, C) -> (B, *spatial): the map drawn over the image."""
  return np.asarray(attributions, np.float64).sum(-1)


def headline(checks: dict) -> dict:
  """The numbers a command prints: IG completeness, randomisation rho, deletion / insertion."""
  faith, rand = checks["faithfulness"], checks["randomisation"]["full"]
  return {"ig_relative_gap": checks["integrated_gradients_completeness"]["relative_gap_mean"],
          "randomisation_rho_abs": rand["abs"], "randomisation_rho_signed": rand["signed"],
          "deletion_auc": faith["deletion_auc"],
          "random_deletion_auc": faith["random_deletion_auc"],
          "insertion_auc": faith["insertion_auc"],
          "random_insertion_auc": faith["random_insertion_auc"],
          "faithful": float(checks["faithful"])}


def write_checks(checks: dict, out_dir: str, extra: dict, title: str = "") -> dict:
  """Writes `checks.json` (checks + `extra`: examples, targets, files; not the raw
  curves, which `report` leaves under faithfulness/per_example) and the curves figure;
  returns `headline(checks)`."""
  os.makedirs(out_dir, exist_ok=True)
  figures.faithfulness_curves(checks["_faithfulness_curves"],
                              os.path.join(out_dir, CURVES_FILE), title=title)
  faithfulness = {k: v for k, v in checks["faithfulness"].items() if k != "per_example"}
  report.write_json({**checks, "faithfulness": faithfulness, **extra},
                    os.path.join(out_dir, CHECKS_FILE))
  return headline(checks)
