"""The Flower `ServerApp`: FedAvg or FedProx over the sites, round selection, test round.

Flower's own strategies aggregate (`flwr.serverapp.strategy.FedAvg` / `FedProx`:
the example-weighted mean of the clients' parameters, weights = their training
stays). `_BestRound` adds model selection: after each round the clients score
the global model on their validation stays, and the round with the best pooled
validation AUROC (from the clients' score histograms) is kept. A last evaluate
round scores that model on every site's test stays. Written to `<workdir>`:
`global_params.npz` (the selected model) and `federated.json` (per-round
metrics, per-site and pooled test AUROC).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import logging
from flwr.app import ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, FedProx

from medjax.engine.errors import InputError
from medjax.privacy.federated import histogram
from medjax.privacy.federated.client import CONFIG_KEY, from_arrays

MODES = {"fedavg": FedAvg, "fedprox": FedProx}


def aggregate_evaluation(records: list[RecordDict], weight_key: str) -> MetricRecord:
  """Pooled AUROC (summed histograms), the example-weighted mean site AUROC, counts."""
  metrics = [next(iter(r.metric_records.values())) for r in records]
  pos = np.sum([m["hist-pos"] for m in metrics], axis=0)
  neg = np.sum([m["hist-neg"] for m in metrics], axis=0)
  weights = np.array([float(m[weight_key]) for m in metrics])
  aurocs = np.array([float(m["auroc"]) for m in metrics])
  ok = np.isfinite(aurocs)
  mean = float(np.sum(weights[ok] * aurocs[ok]) / weights[ok].sum()) if ok.any() else np.nan
  return MetricRecord({"auroc-pooled": histogram.binned_auroc(pos, neg),
                       "auroc-site-mean": mean, weight_key: int(weights.sum())})


class _BestRound:
  """Keeps the global parameters of the round with the best pooled validation AUROC."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, evaluate_metrics_aggr_fn=aggregate_evaluation, **kwargs)
    self.best_arrays, self.best_round, self.best_auroc = None, 0, -np.inf
    self.history: dict[int, dict] = {}
    self._evaluated = None

  def configure_evaluate(self, server_round, arrays, config, grid):
    self._evaluated = arrays
    return super().configure_evaluate(server_round, arrays, config, grid)

  def aggregate_evaluate(self, server_round, replies):
    metrics = super().aggregate_evaluate(server_round, list(replies))
    if metrics is not None:
      self.history[server_round] = dict(metrics)
      value = metrics["auroc-pooled"]
      if value > self.best_auroc or self.best_auroc == -np.inf:  # NaN: keep the latest
        self.best_arrays, self.best_round = self._evaluated, server_round
        self.best_auroc = value if np.isfinite(value) else -np.inf
    return metrics


class FedAvgBest(_BestRound, FedAvg):
  pass


class FedProxBest(_BestRound, FedProx):
  pass


def make_strategy(mode: str, proximal_mu: float, min_nodes: int):
  if mode not in MODES:
    raise InputError(f"federated mode {mode!r}: use one of {' | '.join(MODES)}")
  kw = dict(min_train_nodes=min_nodes, min_evaluate_nodes=min_nodes,
            min_available_nodes=min_nodes)
  if mode == "fedprox":
    return FedProxBest(proximal_mu=proximal_mu, **kw)
  return FedAvgBest(**kw)


def _initial_arrays(grid: Grid, config_record: ConfigRecord, min_nodes: int,
                    timeout: float):
  """Waits for `min_nodes` SuperNodes, then asks one for its initial parameters."""
  start = time.time()
  while len(list(grid.get_node_ids())) < min_nodes:
    if time.time() - start > timeout:
      raise TimeoutError(f"fewer than {min_nodes} SuperNodes connected in {timeout:.0f} s")
    time.sleep(1.0)
  node = sorted(grid.get_node_ids())[0]
  msg = Message(RecordDict({"config": config_record}), dst_node_id=node,
                message_type=MessageType.QUERY)
  (reply,) = grid.send_and_receive([msg], timeout=timeout)
  if reply.has_error():
    raise RuntimeError(f"SuperNode {node} failed to initialise: {reply.error.reason}")
  return reply.content["arrays"]


def _test_round(strategy, grid, arrays, config_record, timeout) -> dict:
  """Per-site test metrics of `arrays`, and the pooled AUROC from their histograms."""
  test_config = ConfigRecord({**dict(config_record), "split": "test"})
  messages = FedAvg.configure_evaluate(strategy, 0, arrays, test_config, grid)
  replies = [r for r in grid.send_and_receive(messages, timeout=timeout)
             if not r.has_error()]
  sites = {}
  for reply in replies:
    m = reply.content["metrics"]
    sites[str(reply.content["site"]["name"])] = {
        "auroc": float(m["auroc"]), "count": int(m["num-examples"]),
        "deaths": int(m["deaths"])}
  pooled = aggregate_evaluation([r.content for r in replies], "num-examples")
  return {"sites": sites, "pooled_auroc": float(pooled["auroc-pooled"])}


def run_federated(grid: Grid, config, workdir: str, mode: str, min_nodes: int) -> dict:
  """FedAvg / FedProx for `config.federated.rounds` rounds; returns the summary."""
  fed = config.federated
  record = ConfigRecord({CONFIG_KEY: config.to_json()})
  initial = _initial_arrays(grid, record, min_nodes, fed.round_timeout_s)
  strategy = make_strategy(mode, fed.proximal_mu, min_nodes)
  strategy.start(grid=grid, initial_arrays=initial, num_rounds=fed.rounds,
                 timeout=fed.round_timeout_s, train_config=record,
                 evaluate_config=ConfigRecord({**dict(record), "split": "val"}))
  best = strategy.best_arrays or initial
  summary = {"mode": mode, "best_round": strategy.best_round,
             "best_val_auroc_pooled": float(strategy.best_auroc),
             "rounds": {str(k): v for k, v in strategy.history.items()},
             "test": _test_round(strategy, grid, best, record, fed.round_timeout_s)}
  os.makedirs(workdir, exist_ok=True)
  np.savez(os.path.join(workdir, "global_params.npz"), **from_arrays(best))
  with open(os.path.join(workdir, "federated.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=1, default=float)
  logging.info("%s: best round %d (pooled val AUROC %.4f); test %s", mode,
               strategy.best_round, strategy.best_auroc, summary["test"])
  return summary
