"""The federated comparison's outputs: sites.csv, federated_table.csv / .md, metrics.json."""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from medjax.metrics import ranking


def aurocs(predictions: dict[str, tuple]) -> dict[str, float]:
  """{site: AUROC, ..., "pooled": AUROC over all the sites' test stays}."""
  out = {site: ranking.roc_auc(y, p) for site, (y, p) in predictions.items()}
  labels = np.concatenate([y for y, _ in predictions.values()])
  probs = np.concatenate([p for _, p in predictions.values()])
  out["pooled"] = ranking.roc_auc(labels, probs)
  return out


def write_sites(sites, labels, workdir: str) -> None:
  """Per site and split: stays and deaths."""
  with open(os.path.join(workdir, "sites.csv"), "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["site", "split", "stays", "deaths"])
    for s in sites:
      for part, idx in s.splits.items():
        writer.writerow([s.name, part, len(idx), int(np.sum(labels[idx]))])


def _fmt(value: float) -> str:
  return "n/a" if not np.isfinite(value) else f"{value:.3f}"


def write_results(predictions, selection, sites, workdir: str, config) -> dict:
  """Test AUROC per site (rows) and mode (columns), plus the pooled row."""
  modes = list(predictions)
  table = {mode: aurocs(predictions[mode]) for mode in modes}
  first = predictions[modes[0]]
  rows = [(s.name, len(first[s.name][0]), int(first[s.name][0].sum())) for s in sites]
  rows.append(("pooled", sum(r[1] for r in rows), sum(r[2] for r in rows)))
  with open(os.path.join(workdir, "federated_table.csv"), "w", newline="",
            encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["site", "test_stays", "test_deaths", *modes])
    for name, n, d in rows:
      writer.writerow([name, n, d, *(f"{table[m][name]:.4f}" for m in modes)])
  lines = [f"| site | test stays (deaths) | {' | '.join(modes)} |",
           "|---|---|" + "---|" * len(modes)]
  lines += [f"| {name} | {n} ({d}) | {' | '.join(_fmt(table[m][name]) for m in modes)} |"
            for name, n, d in rows]
  with open(os.path.join(workdir, "federated_table.md"), "w", encoding="utf-8") as f:
    f.write(f"Test AUROC ({config.task.dataset}, {config.task.model}, "
            f"{config.federated.site_split}, {config.federated.rounds} rounds x "
            f"{config.federated.local_steps} steps)\n\n" + "\n".join(lines) + "\n")
  metrics = {"test_auroc": table, "selection": selection,
             "sites": {name: {"test_stays": n, "test_deaths": d} for name, n, d in rows}}
  with open(os.path.join(workdir, "metrics.json"), "w", encoding="utf-8") as f:
    json.dump(metrics, f, indent=1, default=float)
  return metrics
