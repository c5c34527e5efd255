"""`--mode=explain` of the EHR task: attributions of chosen stays and their trust checks.

    python -m experiments.ehr --mode=explain --workdir=workdirs/ehr_quick \
        --config=experiments/configs/ehr.py --config.explain.examples=8

The run's saved config is read back (`explain.mode.config_for_explain`: the
`--config.explain.*` flags given win, the mesh is the command line's) and its best
checkpoint explained. The score is
the model's mortality logit; the attributed input is the normalised measurement
values (time x variable), with masks, times since the last observation and static
features held fixed, and the baseline 0 (the training mean, also the value of an
unobserved or padded entry). Written to `<workdir>/explain/`:
`patient_<id>.png` (one time x variable heat map per stay), `variables.png` (summed
|attribution| per variable), `faithfulness.png` (deletion / insertion vs random) and
`checks.json` (medjax.explain.report's checks plus the stays explained).
RETAIN's inputs are integer codes: its explanation is its own attention, drawn by the
end-of-run report.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from medjax.ehr import examples as ex
from medjax.ehr import task as task_lib
from medjax.ehr.evaluation import sigmoid
from medjax.engine.errors import InputError
from medjax.explain import checks as checks_lib
from medjax.explain import figures
from medjax.explain import mode
from medjax.explain import report

INPUT = "values"  # the attributed array: normalised measurements (T, V), 0 = unobserved


def mortality_logit(outputs):
  """The score explained: one mortality logit per stay."""
  return outputs["logits"]


def _checked_task(config, workdir: str):
  """The run's task, after the explain fields are checked (before any data is read)."""
  if task_lib.input_kind(config.task.model) == "codes":
    raise InputError(f"--mode=explain: model {config.task.model!r} reads integer codes, "
                     "which gradients cannot attribute; its explanation is its attention "
                     "per visit and contribution per code (the run's explain_<id>.png)")
  mode.refuse_gradcam(config.explain.method, "the EHR models have no spatial feature "
                      "map; use integrated_gradients, gradients, grad_x_input, smoothgrad "
                      "or occlusion")
  mode.check_target(config.explain.target, 1, "output", "it (the mortality logit)")
  task = task_lib.EhrTask(config.task, batch_size=config.batch_size, workdir=workdir)
  split = config.explain.split
  if not len(task.splits.get(split, ())):
    names = [k for k, v in task.splits.items() if len(v)]
    raise InputError(f"--config.explain.split={split!r}: no such split with stays in this "
                     f"run (one of {', '.join(names)})")
  return task


def _figures(task, batch, attr, ids, risk, checks, out_dir: str) -> None:
  names = list(getattr(task.data, "variables", ()))
  if task.kind == "binned":
    time = {"time_step": task.cfg.bin_hours, "time_label": "hours since ICU admission"}
  else:
    time = {"time_step": 1.0, "time_label": "observation time step"}
  method = checks["method"]
  for i, stay in enumerate(ids):
    title = (f"id {stay}: label {int(batch['label'][i])}, predicted risk {risk[i]:.3f}\n"
             f"{method}, mortality logit (dots: observed)")
    figures.sequence_heatmap(attr[i], names, os.path.join(out_dir, f"patient_{stay}.png"),
                             mask=batch["mask"][i], title=title, **time)
  figures.feature_bars(np.abs(attr).sum((0, 1)), names, os.path.join(out_dir, "variables.png"),
                       title=f"{method}: {len(ids)} stays of {task.cfg.model}",
                       xlabel="sum of |attribution| over time and stays")


def observed_rank_correlation(attr, other, mask) -> dict:
  """Spearman rho per stay of two attributions over the observed entries only.

  Unobserved entries equal the baseline, so their attribution is 0 under any
  parameters; over all entries these ties alone would give rho near 1.
  """
  rho = {"abs": [], "signed": []}
  for a, b, m in zip(np.asarray(attr), np.asarray(other), np.asarray(mask) > 0):
    rho["abs"].append(checks_lib.spearman(np.abs(a[m])[None], np.abs(b[m])[None])[0])
    rho["signed"].append(checks_lib.spearman(a[m][None], b[m][None])[0])
  return {"abs": float(np.nanmean(rho["abs"])), "signed": float(np.nanmean(rho["signed"])),
          "abs_per_example": rho["abs"], "signed_per_example": rho["signed"]}


def _checks(cfg, apply, variables, random_variables, x, mask):
  """medjax.explain.report's checks, plus the randomisation rho over observed entries."""
  options = report.method_options(cfg, spatial_dims=1)
  attr, checks = report.explain_and_check(
      apply, variables, random_variables, x, mortality_logit,
      key=jax.random.key(cfg.seed), method=cfg.method, baseline=0.0, group_axes=0,
      ig_steps=cfg.ig_steps, faithfulness_steps=cfg.faithfulness_steps,
      random_seeds=cfg.random_seeds, **options)
  # The key explain_and_check gives the method (SmoothGrad's noise): the same samples.
  random_attr, _ = report.attribute_with(cfg.method, apply, random_variables, x,
                                         mortality_logit,
                                         key=jax.random.split(jax.random.key(cfg.seed))[0],
                                         **options)
  checks["randomisation"]["observed_only"] = observed_rank_correlation(attr, random_attr,
                                                                       mask)
  return attr, checks


def explain_run(config, workdir: str) -> dict:
  """Explains `config.explain`'s stays of the run in `workdir`; returns the checks."""
  cfg = config.explain
  task = _checked_task(config, workdir)
  split = np.asarray(task.splits[cfg.split])
  positions = np.asarray(mode.example_indices(cfg, len(split)))
  batch = ex.collate([task.examples[i] for i in split[positions]], task.pad_multiple)
  variables, random_variables = mode.trained_and_random(config, workdir, task, cfg.seed)
  apply = mode.model_apply(task, batch, INPUT)
  x = jnp.asarray(batch[INPUT], jnp.float32)
  attr, checks = _checks(cfg, apply, variables, random_variables, x, batch["mask"])
  ids = [int(i) for i in task.examples.ids[split[positions]]]
  logits = np.asarray(mortality_logit(apply(variables, x)))
  risk = task.calibrator.current.probabilities(logits)
  names = list(getattr(task.data, "variables", ()))
  checks["ehr"] = {"model": config.task.model, "split": cfg.split, "score": "mortality logit",
                   "input": INPUT, "positions": positions.tolist(), "ids": ids,
                   "labels": batch["label"].astype(int).tolist(),
                   "logits": logits.tolist(), "risk": risk.tolist(),
                   "risk_uncalibrated": sigmoid(logits).tolist(),
                   "temperature": task.calibrator.current.temperature,
                   "abs_attribution_per_variable": dict(zip(
                       names, np.abs(attr).sum((0, 1)).round(6).tolist()))}
  out_dir = os.path.join(workdir, mode.OUT_DIR)
  os.makedirs(out_dir, exist_ok=True)
  _figures(task, batch, attr, ids, risk, checks, out_dir)
  mode.write_checks(checks, out_dir, {},
                    title=f"{cfg.method}, mortality logit, {len(ids)} stays")
  checks["_attributions"], checks["_batch"] = attr, batch
  return checks


def headline(checks: dict) -> str:
  """One line: IG completeness, randomisation rho, deletion / insertion AUC vs random."""
  ig, rand = checks["integrated_gradients_completeness"], checks["randomisation"]
  seen, rand = rand["observed_only"], rand["full"]
  f = checks["faithfulness"]
  return (f"{checks['method']} on {checks['examples']} stays: IG relative gap "
          f"{ig['relative_gap_mean']:.2g}; randomisation rho |attr| over observed "
          f"entries {seen['abs']:.3f} (signed {seen['signed']:.3f}; all entries "
          f"{rand['abs']:.3f}); deletion AUC {f['deletion_auc']:.4g} vs random "
          f"{f['random_deletion_auc']:.4g}; insertion AUC {f['insertion_auc']:.4g} vs "
          f"random {f['random_insertion_auc']:.4g}; faithful={checks['faithful']}")
