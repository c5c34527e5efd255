"""End-of-run report of the EHR task: predictions, calibration plot, one patient explained.

Written into the workdir, for the validation and test splits:
* `predictions_<split>.csv` (id, label, calibrated and uncalibrated probability) and
  `calibration_<split>.png` (reliability diagram before / after calibration, ROC,
  histogram); `calibration.json`, the temperature fitted on validation
  (medjax.ehr.calibration), which evaluation on another set directory applies;
* `explain_<id>.png` for the chosen patient (`config.task.report_patient`, a stay or
  admission id; by default the test patient who died with the highest predicted risk),
  drawn with `medjax.explain.figures`: gradient x input per hour and variable (GRU /
  LSTM / GRU-D), the attention weight of each observation's time step per hour and
  variable (Transformer), or the contribution of each code to the logit (RETAIN, with
  its attention per visit in `visit_attention_<id>.png`); `explain_<id>.json` holds
  the raw numbers. `--mode=explain` (medjax.ehr.explanation) adds the trust checks.
"""

from __future__ import annotations

import json
import os

import numpy as np

from medjax.ehr import calibration as calibration_lib
from medjax.ehr import figures as ehr_figures
from medjax.ehr.evaluation import sigmoid
from medjax.ehr.examples import padded_batch
from medjax.explain import figures


def _choose_patient(task, indices, labels, probs) -> int:
  wanted = task.cfg.report_patient
  if wanted >= 0:
    hits = np.flatnonzero(task.examples.ids == wanted)
    if not len(hits):
      raise ValueError(f"report_patient {wanted} is not in the data set")
    return int(hits[0])
  pool = np.flatnonzero(labels == 1) if labels.any() else np.arange(len(labels))
  return int(indices[pool[np.argmax(probs[pool])]])


def _attention_grid(item, attention, num_bins: int, bin_hours: float) -> np.ndarray:
  """Transformer: each observation gets its time step's attention weight, per hour bin."""
  n = int(item["token_mask"].shape[0])
  hour = np.clip((np.asarray(item["times"]) // bin_hours).astype(int), 0, num_bins - 1)
  grid = np.zeros((num_bins, item["mask"].shape[1]))
  np.add.at(grid, hour, np.asarray(attention[:n])[:, None] * item["mask"])
  return grid


def _retain_figures(item, out, vocab, path: str, title: str) -> dict:
  """RETAIN: contribution of each code to the logit, and attention per visit (alpha)."""
  names = {i: c for c, i in vocab.items()}
  visits = [[names.get(int(c), "<unknown>") for c in row if c > 0] for row in item["codes"]]
  contrib = [out["code_contributions"][j, :len(v)].tolist() for j, v in enumerate(visits)]
  alpha = out["visit_attention"][:len(visits)]
  flat = np.concatenate(contrib or [[]])
  labels = [f"v{j} {code}" for j, v in enumerate(visits) for code in v]
  figures.feature_bars(flat, labels, path, top=15, title=title,
                       xlabel="contribution to the logit")
  days = [f"visit {j} (day {t:.0f})" for j, t in enumerate(item["visit_times"][:len(visits)])]
  figures.feature_bars(alpha, days, os.path.join(os.path.dirname(path), "visit_attention_"
                                                 + os.path.basename(path)[len("explain_"):]),
                       title=title, xlabel="visit attention (alpha)")
  return {"visit_attention": alpha.round(5).tolist(), "codes": visits,
          "contributions": np.round(flat, 5).tolist()}


def _explain(task, predict_fn, index: int, path: str, pad_multiple: int) -> dict:
  item = task.examples[index]
  batch = padded_batch([item], task.eval_batch_size, pad_multiple)
  if task.kind == "binned":
    batch["attribute"] = (np.arange(task.eval_batch_size) == 0).astype(np.float32)
  out = {k: np.asarray(v)[0] for k, v in predict_fn(batch).items()}
  risk = float(task.calibrator.current.probabilities(out["logits"]))
  stay = int(task.examples.ids[index])
  title = f"id {stay}: label {int(item['label'])}, predicted risk {risk:.3f}"
  record = {"id": stay, "label": int(item["label"]), "risk": risk,
            "risk_uncalibrated": float(sigmoid(out["logits"]))}
  variables = getattr(task.data, "variables", ())
  hours = {"time_step": task.cfg.bin_hours, "time_label": "hours since ICU admission"}
  if task.kind == "binned":
    figures.sequence_heatmap(out["attribution"], variables, path, mask=item["mask"],
                             title=f"{title}\ngradient x input (dots: observed)", **hours)
    record["attribution_per_variable"] = dict(zip(variables, out["attribution"].sum(0)
                                                  .round(5).tolist()))
  elif task.kind == "tokens":
    grid = _attention_grid(item, out["attention"], task.cfg.num_bins, task.cfg.bin_hours)
    figures.sequence_heatmap(grid, variables, path, mask=grid > 0, **hours,
                             title=f"{title}\nattention weight of each observation's time")
    n = int(item["token_mask"].shape[0])
    record["attention"] = {"times": item["times"].tolist(),
                           "weights": out["attention"][:n].round(5).tolist()}
  else:
    record.update(_retain_figures(item, out, task.prep["vocab"], path, title))
  return record


def _split_outputs(task, evaluator, predict_fn, workdir: str):
  """Predictions CSV and reliability diagram of one split; (labels, calibrated risk)."""
  labels, logits = evaluator.predict_logits(predict_fn)
  if evaluator.fit_calibration:  # the selected checkpoint's fit, whatever ran before
    evaluator.calibrator.fit(labels, logits, evaluator.name)
  probs, raw = task.calibrator.current.probabilities(logits), sigmoid(logits)
  ids = task.examples.ids[evaluator.indices]
  with open(os.path.join(workdir, f"predictions_{evaluator.name}.csv"), "w") as f:
    f.write("id,label,probability,probability_uncalibrated\n")
    f.writelines(f"{i},{int(y)},{p:.6f},{q:.6f}\n"
                 for i, y, p, q in zip(ids, labels, probs, raw))
  ehr_figures.calibration_plot(
      labels, probs, os.path.join(workdir, f"calibration_{evaluator.name}.png"),
      f"{task.cfg.model} on {task.cfg.dataset} ({evaluator.name}, n={len(labels)}, "
      f"T={task.calibrator.current.temperature:.3g})", uncalibrated=raw)
  return labels, probs


def write_report(task, predict_fn, workdir: str) -> dict[str, float]:
  os.makedirs(workdir, exist_ok=True)
  evaluators = {e.name: e for e in task.evaluators()}
  if not evaluators:
    return {}
  outputs = {name: _split_outputs(task, e, predict_fn, workdir)
             for name, e in sorted(evaluators.items(), key=lambda kv: kv[0] != "val")}
  calibration_lib.save(task.calibrator.current, workdir)
  name = "test" if "test" in evaluators else next(iter(evaluators))
  index = _choose_patient(task, evaluators[name].indices, *outputs[name])
  stay = int(task.examples.ids[index])
  record = _explain(task, predict_fn, index, os.path.join(workdir, f"explain_{stay}.png"),
                    evaluators[name].pad_multiple)
  with open(os.path.join(workdir, f"explain_{stay}.json"), "w") as f:
    json.dump(record, f, indent=1)
  return {"report/explained_id": float(stay),
          "report/temperature": task.calibrator.current.temperature}
