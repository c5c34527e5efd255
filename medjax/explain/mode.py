"""What every task's `--mode=explain` shares: its config, the examples, the files written.

    overrides = mode.explain_overrides(flags.FLAGS, flag_config)  # --config.explain.* given
    config = mode.config_for_explain(workdir, overrides, flag_config)  # + the run's config
    indices = mode.example_indices(config.explain, len(source))
    ...attributions and checks (`report.explain_and_check`)...
    headline = mode.write_checks(checks, out_dir, extra)    # checks.json + faithfulness.png
"""

from __future__ import annotations

import os

from absl import logging
import jax
import ml_collections
import numpy as np

from medjax.engine import checkpoint as checkpoint_lib
from medjax.engine import config as config_lib
from medjax.engine import mesh as mesh_lib
from medjax.engine import steps
from medjax.engine import workdir as workdir_lib
from medjax.engine.errors import InputError
from medjax.explain import figures
from medjax.explain import loading
from medjax.explain import methods
from medjax.explain import report

OUT_DIR = "explain"  # under the workdir
CHECKS_FILE = "checks.json"
CURVES_FILE = "faithfulness.png"


def explain_overrides(flag_values, flag_config) -> dict:
  """{field: value} of the `--config.explain.*` flags given on the command line.

  Other `--config.*` flags (except `--config.mesh.*`) do not apply to a trained run:
  logged. `flag_config` None (no `--config`) gives {}.
  """
  if flag_config is None:
    return {}
  prefix = "config.explain."
  given = [n for n in flag_values if n.startswith("config.") and flag_values[n].present]
  ignored = [n for n in given if not n.startswith((prefix, "config.mesh."))]
  if ignored:
    logging.warning("--mode=explain uses the run's saved config: only --config.explain.* "
                    "and --config.mesh.* flags apply, not %s", ignored)
  return {n[len(prefix):]: flag_config.explain[n[len(prefix):]] for n in given
          if n.startswith(prefix)}


def config_for_explain(workdir: str, overrides: dict | None = None, flag_config=None):
  """The run's saved config (`config.json`) with `overrides` in its explain section and
  the command line's mesh (`flag_config.mesh`, else the default).

  The model, data and optimiser (whose state the checkpoint holds) are the trained
  ones; explain fields not given keep the run's saved values (or the defaults); an
  unknown field is refused. A workdir without a saved config (older runs) gives
  `flag_config`, logged, or an InputError without one.
  """
  saved = workdir_lib.load_config(workdir)
  if saved is None:
    if flag_config is None:
      raise InputError(f"--workdir={workdir} has no {workdir_lib.CONFIG_FILE}: give the "
                       "workdir of a trained run, or --config")
    logging.warning("%s has no %s: explaining with the command line's config", workdir,
                    workdir_lib.CONFIG_FILE)
    return flag_config
  fields = config_lib.base_config().explain.to_dict()
  fields.update(saved.explain.to_dict() if "explain" in saved else {})
  unknown = sorted(set(overrides or {}) - set(fields))
  if unknown:
    raise InputError(f"--config.explain.{unknown[0]}: no such field ({', '.join(fields)})")
  fields.update(overrides or {})
  mesh = (config_lib.base_config() if flag_config is None else flag_config).mesh
  with saved.unlocked():
    saved.explain = ml_collections.ConfigDict(fields)
    saved.mesh = mesh.copy_and_resolve_references()
  return saved


def twin_seed(seed: int, trained_seed: int) -> int:
  """The re-initialised twin's seed: `seed`, or seed + 1 where the run was trained
  with `seed` (its twin would be its own initial state)."""
  return int(seed) + 1 if int(seed) == int(trained_seed) else int(seed)


def trained_and_random(config, workdir: str, task, seed: int):
  """(best-checkpoint variables, the model initialised afresh with `seed`, or with
  seed + 1 when the run was trained with `seed`: see `twin_seed`).

  As `loading.trained_and_random`, but the twin is the engine's own initial state
  (`steps.create_state`, the init training starts from, under another seed), which
  the restore needs anyway: one init compiled, not two (each ~10-30 s on a CPU).
  """
  mesh = mesh_lib.make_mesh(config.mesh)
  tx, _ = task.optimizer(config.optimizer, config.total_steps)
  fresh, _, abstract = steps.create_state(task, tx, task.example_batch(1), mesh,
                                          twin_seed(seed, config.seed),
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


def open_split(open_fn, split: str, explain_config):
  """(`open_fn(split)`, the chosen `example_indices` in it); an InputError opening the
  split (e.g. a DataError) is re-raised naming --config.explain.split."""
  try:
    source = open_fn(split)
  except InputError as e:
    raise InputError(f"--config.explain.split={split}: {e}") from None
  return source, example_indices(explain_config, len(source))


def draw_maps(path_stem: str, images, maps, titles, signed: bool, title: str,
              centres=None) -> list[str]:
  """Heat maps (B, *S) over images (B, *S, C): 2D, one `<stem>_overlays.png`; 3D, one
  `<stem>_<k>.png` of orthogonal slices through centres[k] (None: the peak of |map|)."""
  maps = np.asarray(maps)
  if maps.ndim == 3:
    path = path_stem + "_overlays.png"
    figures.overlays_2d(images, maps, path, titles=titles, signed=signed, title=title)
    return [path]
  paths = []
  for k, (volume, heat) in enumerate(zip(images, maps)):
    path = f"{path_stem}_{k}.png"
    centre = (np.unravel_index(np.argmax(np.abs(heat)), heat.shape) if centres is None
              else centres[k])
    figures.orthogonal_slices(volume, heat, path, centre=centre, signed=signed,
                              title=f"{title}: {titles[k]}".replace("\n", ", "))
    paths.append(path)
  return paths


def refuse_gradcam(method: str, reason: str) -> str:
  """The checked `method` (`methods.check_method`); gradcam refused, before anything is
  loaded, with `reason`."""
  method = methods.check_method(method)
  if method == "gradcam":
    raise InputError(f"--config.explain.method=gradcam: {reason}")
  return method


def check_target(target: int, num_outputs: int, what: str = "class",
                 default: str = "the predicted one") -> int:
  """`target` when in [0, num_outputs), -1 as is; else InputError naming the flag
  (`what`: the output's noun; `default`: what -1 explains)."""
  target = int(target)
  if target != -1 and not 0 <= target < num_outputs:
    plural = what if num_outputs == 1 else (
        what + "es" if what.endswith(("s", "x", "ch", "sh")) else what + "s")
    raise InputError(f"--config.explain.target={target}: the model has {num_outputs} "
                     f"{plural} (0..{num_outputs - 1}); -1 explains {default}")
  return target


def channel_sum(attributions) -> np.ndarray:
  """(B, *spatial, C) -> (B, *spatial): the map drawn over the image."""
  return np.asarray(attributions, np.float64).sum(-1)


def headline(checks: dict) -> dict:
  """The numbers a command prints: IG completeness, randomisation rho, deletion / insertion."""
  faith, rand = checks["faithfulness"], checks["randomisation"]["full"]
  return {"ig_relative_gap": checks["integrated_gradients_completeness"]["relative_gap_mean"],
          "randomisation_rho_abs": rand["abs"], "randomisation_rho_signed": rand["signed"],
          "randomisation_rho_abs_informative":
              checks["randomisation"].get("informative", {}).get("abs", float("nan")),
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


def run_from_flags(flag_values, flag_config, workdir: str, build_task, explain_run) -> dict:
  """`explain_run(config, workdir, build_task(config))` on the run's saved config with
  this command's `--config.explain.*` flags and mesh; prints its numbers."""
  config = config_for_explain(workdir, explain_overrides(flag_values, flag_config),
                              flag_config)
  results = explain_run(config, workdir, build_task(config))
  print("explain:", " ".join(f"{k}={v:.4f}" for k, v in results.items()))
  logging.info("wrote figures and %s to %s", CHECKS_FILE, os.path.join(workdir, OUT_DIR))
  return results
