"""FedAvg / FedProx with SecAgg+ secure aggregation (the server sees only the sum).

Flower 1.42 offers SecAgg+ (`flwr.server.workflow.SecAggPlusWorkflow` with the
client mod `flwr.client.mod.secaggplus_mod`) only in its legacy workflow: legacy
strategies (`flwr.server.strategy.FedAvg` / `FedProx`) and FitIns / FitRes
messages. So this mode has its own ServerApp main, and the ClientApp routes
SecAgg+ train messages through `secaggplus_mod` to `legacy_train`; the rest (initial parameters, the test round) is
shared with `client` / `server`. Each client quantises its weighted parameters
(clipped to +-`clipping_range`) and masks them with pairwise secrets; the
server unmasks only their sum. No per-round validation (the server cannot
score individual rounds without extra evaluate rounds): the last round's model
is tested.
"""

from __future__ import annotations

import json
import os

import numpy as np
from flwr.app import ConfigRecord, Context, Message
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat
from flwr.server import LegacyContext, ServerConfig
from flwr.server import strategy as legacy
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_PARAMS_RECORD
from flwr.serverapp import Grid, ServerApp

from medjax.privacy.federated import client, server

CLIPPING_RANGE = 8.0  # parameters beyond +-8 would be clipped by the quantiser


def legacy_train(msg: Message, context: Context) -> Message:
  """A FitIns message -> FitRes (what `secaggplus_mod` masks)."""
  fitins = compat.recorddict_to_fitins(msg.content, keep_input=True)
  config = fitins.config
  trainer, k, _ = client.trainer_for(str(config[client.CONFIG_KEY]), context)
  keys = json.loads(str(config["keys"]))
  fed = trainer.config.federated
  server_round = int(config["server-round"])
  params = dict(zip(keys, parameters_to_ndarrays(fitins.parameters)))
  trainer.start_round(params, float(config.get("proximal_mu", 0.0)),
                      step=(server_round - 1) * fed.local_steps)
  metrics = trainer.train(fed.local_steps, seed=trainer.config.seed * 100003
                          + server_round * 101 + k)
  new = trainer.params()
  if max(float(np.abs(v).max()) for v in new.values()) > CLIPPING_RANGE:
    raise ValueError(f"a parameter exceeds SecAgg+'s clipping range +-{CLIPPING_RANGE}")
  res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters([new[key] for key in keys]),
               trainer.num_train, {"train-loss": metrics["loss"]})
  return Message(compat.fitres_to_recorddict(res, keep_input=False), reply_to=msg)


def run_secure(grid: Grid, context: Context, config, workdir: str, mode: str,
               min_nodes: int) -> dict:
  """`config.federated.rounds` rounds of FedAvg / FedProx aggregated with SecAgg+."""
  fed = config.federated
  text = config.to_json()
  record = ConfigRecord({client.CONFIG_KEY: text})
  initial = server._initial_arrays(grid, record, min_nodes, fed.round_timeout_s)  # pylint: disable=protected-access
  keys = sorted(initial.keys())

  def fit_config(server_round: int) -> dict:
    return {client.CONFIG_KEY: text, "keys": json.dumps(keys), "server-round": server_round}

  kw = dict(fraction_evaluate=0.0, min_fit_clients=min_nodes,
            min_available_clients=min_nodes, on_fit_config_fn=fit_config,
            initial_parameters=ndarrays_to_parameters([initial[k].numpy() for k in keys]))
  strategy = (legacy.FedProx(proximal_mu=fed.proximal_mu, **kw) if mode == "fedprox"
              else legacy.FedAvg(**kw))
  legacy_context = LegacyContext(context=context, config=ServerConfig(num_rounds=fed.rounds),
                                 strategy=strategy)
  workflow = SecAggPlusWorkflow(num_shares=1.0, reconstruction_threshold=0.7,
                                max_weight=fed.secagg_max_weight,
                                clipping_range=CLIPPING_RANGE)
  DefaultWorkflow(fit_workflow=workflow)(grid, legacy_context)
  final = legacy_context.state.array_records[MAIN_PARAMS_RECORD].to_numpy_ndarrays()
  params = dict(zip(keys, final))
  test = server._test_round(server.make_strategy("fedavg", 0.0, min_nodes), grid,  # pylint: disable=protected-access
                            client.to_arrays(params), record, fed.round_timeout_s)
  summary = {"mode": f"{mode}+secagg", "best_round": fed.rounds, "test": test}
  os.makedirs(workdir, exist_ok=True)
  np.savez(os.path.join(workdir, "global_params.npz"), **params)
  with open(os.path.join(workdir, "federated.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=1, default=float)
  return summary


def make_secure_server_app(config, workdir: str, mode: str, min_nodes: int) -> ServerApp:
  app = ServerApp()

  @app.main()
  def main(grid: Grid, context: Context) -> None:
    run_secure(grid, context, config, workdir, mode, min_nodes)

  return app
