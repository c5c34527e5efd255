"""End-of-run report of the EHR task: predictions, calibration plot, one patient explained.

Written into the workdir:
* `predictions_<split>.csv` (id, label, probability) and `calibration_<split>.png`;
* `explain_<id>.png` for the chosen patient (`config.task.report_patient`, a stay or
  admission id; by default the test patient who died with the highest predicted risk):
  gradient x input per hour and variable (GRU / LSTM / GRU-D), attention per
  observation time (Transformer) or attention per visit and contribution per code
  (RETAIN), plus `explain_<id>.json` with the raw numbers.
"""

from __future__ import annotations

import json
import os

import numpy as np

from medjax.ehr import figures
from medjax.ehr.examples import padded_batch
from medjax.ehr.evaluation import sigmoid


def _choose_patient(task, indices, labels, probs) -> int:
  wanted = task.cfg.report_patient
  if wanted >= 0:
    hits = np.flatnonzero(task.examples.ids == wanted)
    if not len(hits):
      raise ValueError(f"report_patient {wanted} is not in the data set")
    return int(hits[0])
  pool = np.flatnonzero(labels == 1) if labels.any() else np.arange(len(labels))
  return int(indices[pool[np.argmax(probs[pool])]])


def _explain(task, predict_fn, index: int, path: str, pad_multiple: int) -> dict:
  item = task.examples[index]
  batch = padded_batch([item], task.eval_batch_size, pad_multiple)
  if task.kind == "binned":
    batch["attribute"] = (np.arange(task.eval_batch_size) == 0).astype(np.float32)
  out = {k: np.asarray(v)[0] for k, v in predict_fn(batch).items()}
  risk = float(sigmoid(out["logits"]))
  stay = int(task.examples.ids[index])
  title = f"id {stay}: label {int(item['label'])}, predicted risk {risk:.3f}"
  record = {"id": stay, "label": int(item["label"]), "risk": risk}
  variables = getattr(task.data, "variables", ())
  if task.kind == "binned":
    figures.attribution_plot(out["attribution"], item["mask"], variables, path, title,
                             task.cfg.bin_hours)
    record["attribution_per_variable"] = dict(zip(variables, out["attribution"].sum(0)
                                                  .round(5).tolist()))
  elif task.kind == "tokens":
    n = int(item["token_mask"].shape[0])
    figures.attention_plot(item["times"], out["attention"][:n], item["mask"], variables,
                           path, title)
    record["attention"] = {"times": item["times"].tolist(),
                           "weights": out["attention"][:n].round(5).tolist()}
  else:
    names = {i: c for c, i in task.prep["vocab"].items()}
    visits = [[names.get(int(c), "<unknown>") for c in row if c > 0] for row in item["codes"]]
    contrib = [out["code_contributions"][j, :len(v)].tolist() for j, v in enumerate(visits)]
    alpha = out["visit_attention"][:len(visits)]
    figures.retain_plot(alpha, contrib, visits, item["visit_times"], path, title)
    record.update(visit_attention=alpha.round(5).tolist(), codes=visits,
                  contributions=np.round(np.concatenate(contrib or [[]]), 5).tolist())
  return record


def write_report(task, predict_fn, workdir: str) -> dict[str, float]:
  os.makedirs(workdir, exist_ok=True)
  evaluators = {e.name: e for e in task.evaluators()}
  if not evaluators:
    return {}
  name = "test" if "test" in evaluators else next(iter(evaluators))
  evaluator = evaluators[name]
  labels, probs = evaluator.predict(predict_fn)
  ids = task.examples.ids[evaluator.indices]
  with open(os.path.join(workdir, f"predictions_{name}.csv"), "w") as f:
    f.write("id,label,probability\n")
    f.writelines(f"{i},{int(y)},{p:.6f}\n" for i, y, p in zip(ids, labels, probs))
  figures.calibration_plot(labels, probs, os.path.join(workdir, f"calibration_{name}.png"),
                           f"{task.cfg.model} on {task.cfg.dataset} ({name}, n={len(labels)})")
  index = _choose_patient(task, evaluator.indices, labels, probs)
  stay = int(task.examples.ids[index])
  record = _explain(task, predict_fn, index, os.path.join(workdir, f"explain_{stay}.png"),
                    evaluator.pad_multiple)
  with open(os.path.join(workdir, f"explain_{stay}.json"), "w") as f:
    json.dump(record, f, indent=1)
  return {"report/explained_id": float(stay)}
