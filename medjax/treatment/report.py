"""The treatment task's end-of-run report: results tables and figures in the workdir.

T1D: `results.csv` (group, controller, metric, mean, 95% CI, n episodes) and
`results.md`, `bars.png` (time in range and risk index per group and controller,
with the intervals) and `traces.png` (BG, insulin and meals of the first episode
of a few held-out patients, the policy against basal-bolus). Sepsis: survival of
the policy, random, expert and value iteration (`results.md`, `bars.png`) beside
the figures published with ICU-Sepsis.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from medjax.treatment import evaluate

TABLE = ("time_in_range", "time_below_70", "time_below_54", "time_above_180",
         "time_above_250", "mean_bg", "lbgi", "hbgi", "risk_index", "severe_hypo",
         "pump_clipped")
# Average returns of the random, expert and optimal (value iteration) policies in the
# "Baselines" table of the icu-sepsis 2.0.1 README (PyPI), from Choudhary et al.,
# "ICU-Sepsis: A Benchmark MDP Built from Real Medical Data" (2024).
PUBLISHED_SEPSIS = {"random": 0.78, "expert": 0.78, "value_iteration": 0.88}


def write(task, predict_fn, workdir: str) -> dict[str, float]:
  if task.problem.kind == "sepsis":
    return _sepsis(task.evaluators()[0], predict_fn, workdir)
  return _t1d(task, predict_fn, workdir)


def _fmt(s: dict) -> str:
  return f"{s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"


def _t1d(task, predict_fn, workdir):
  rows, summary, groups, traces = [], {}, {}, None
  for ev in task.evaluators():
    runs = ev.traces(predict_fn)
    groups[ev.name] = {k: evaluate.summarize(evaluate.episode_metrics(tr, ev.cohort.env_names))
                       for k, tr in runs.items()}
    if ev.name.startswith("test_") and traces is None:
      traces = (ev, runs)
    for ctrl, stats in groups[ev.name].items():
      for metric, s in stats.items():
        rows.append(dict(group=ev.name, controller=ctrl, metric=metric, **s))
        summary[f"{ev.name}/{ctrl}/{metric}"] = s["mean"]
  with open(os.path.join(workdir, "results.csv"), "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  lines = []
  for group, by_ctrl in groups.items():
    n = next(iter(by_ctrl.values()))["time_in_range"]["n"]
    lines += [f"## {group} ({n} episodes; mean [95% t interval])", "",
              "| controller | " + " | ".join(TABLE) + " |", "|---" * (len(TABLE) + 1) + "|"]
    lines += [f"| {ctrl} | " + " | ".join(_fmt(stats[m]) for m in TABLE) + " |"
              for ctrl, stats in by_ctrl.items()]
    lines.append("")
  with open(os.path.join(workdir, "results.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines))
  _bars(groups, os.path.join(workdir, "bars.png"))
  if traces is not None:
    _traces(*traces, task.config.trace_patients, os.path.join(workdir, "traces.png"))
  return summary


def _bars(groups, path):
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  names = list(groups)
  ctrls = list(next(iter(groups.values())))
  width = 0.8 / len(ctrls)
  for ax, metric in zip(axes, ("time_in_range", "risk_index")):
    for j, ctrl in enumerate(ctrls):
      s = [groups[g][ctrl][metric] for g in names]
      mean = np.array([x["mean"] for x in s])
      err = np.array([[x["mean"] - x["low"] for x in s], [x["high"] - x["mean"] for x in s]])
      ax.bar(np.arange(len(names)) + j * width, mean, width, yerr=np.nan_to_num(err),
             label=ctrl, capsize=3)
    ax.set_xticks(np.arange(len(names)) + width * (len(ctrls) - 1) / 2, names)
    ax.set_title(metric)
  axes[0].legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _traces(ev, runs, count, path):
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  names = ev.cohort.env_names
  firsts = [names.index(n) for n in dict.fromkeys(names)][:count]
  fig, axes = plt.subplots(2, len(firsts), figsize=(5 * len(firsts), 6), squeeze=False)
  hours = np.arange(runs["ppo"].bg.shape[0]) * ev.dosing.task.env.sensor.sample_time / 60
  for col, e in enumerate(firsts):
    top, bottom = axes[0, col], axes[1, col]
    for ctrl in ("ppo", "basal_bolus"):
      top.plot(hours, runs[ctrl].bg[:, e], label=ctrl)
      bottom.plot(hours, runs[ctrl].insulin[:, e] * 60, label=f"{ctrl} insulin")
    top.axhspan(70, 180, color="green", alpha=0.1)
    meals = runs["ppo"].meal[:, e] * ev.dosing.task.env.sensor.sample_time  # g per step
    eaten = meals > 0
    top.scatter(hours[eaten], np.full(eaten.sum(), 60.0), s=4 * meals[eaten], marker="^",
                color="tab:green", label="meal (size: g)")
    top.set_title(f"{names[e]} ({ev.name})")
    top.set_ylabel("BG (mg/dL)")
    bottom.set_yscale("symlog", linthresh=1.0)
    bottom.set_ylabel("insulin (U/h)")
    bottom.set_xlabel("hours")
  axes[0, 0].legend()
  axes[1, 0].legend(loc="upper left")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _sepsis(ev, predict_fn, workdir):
  results = dict(ev.run(predict_fn))
  names = ("random", "expert", "ppo", "ppo_greedy", "value_iteration")
  lines = ["| policy | survival (exact, 500-step horizon) | published (icu-sepsis 2.0.1 README baselines) |",
           "|---|---|---|"]
  for n in names:
    lines.append(f"| {n} | {results[f'{n}_survival']:.4f} | "
                 f"{PUBLISHED_SEPSIS.get(n, '')} |")
  with open(os.path.join(workdir, "results.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(6, 4))
  ax.bar(names, [results[f"{n}_survival"] for n in names])
  ax.set_ylim(0.7, 0.9)
  ax.set_ylabel("survival")
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, "bars.png"), dpi=100)
  plt.close(fig)
  return {f"sepsis/{k}": v for k, v in results.items()}
