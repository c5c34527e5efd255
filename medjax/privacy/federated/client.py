"""The Flower `ClientApp`: one hospital site training and evaluating the medjax EHR task.

Every message from the server carries the whole run config as JSON
(`ConfigRecord["medjax-config"]`), so a SuperNode needs only its node config:
`site` (a site name or index; in simulation, Flower's `partition-id`) and, when its
data are elsewhere than the config says, `data-root`. The site's `SiteTrainer`
(data, preprocessing fitted on its training stays, compiled step) is built on the
first message and cached for the run (a simulation worker may serve several
sites, and keeps each one's trainer). Clients are stateless between rounds:
each round starts a fresh optimiser from the global parameters, so any Flower
worker can serve any site.

Messages: `query` -> the initial parameters; `train` -> `local_steps` steps from
the global parameters (FedProx: the proximal term with the server's
`proximal-mu`) -> new parameters and `num-examples` (training stays);
`evaluate` -> AUROC on `split` (val | test) plus per-class score histograms, from
which the server computes a pooled AUROC without seeing any prediction. Train
messages of a SecAgg+ run (`config.federated.secure_aggregation`) go through
Flower's `secaggplus_mod` to `secure.legacy_train`.
"""

from __future__ import annotations

import json

import ml_collections
import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord
from flwr.app import RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS as SECAGG_KEY

from medjax.engine.errors import InputError
from medjax.ehr import task as task_lib
from medjax.metrics import ranking
from medjax.privacy.federated import histogram
from medjax.privacy.federated import sites as sites_lib
from medjax.privacy.federated.trainer import SiteTrainer

CONFIG_KEY = "medjax-config"
_TRAINERS: dict[tuple[str, str], tuple[SiteTrainer, int, str]] = {}


def config_from_json(text: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(json.loads(text))


def to_arrays(params: dict[str, np.ndarray]) -> ArrayRecord:
  return ArrayRecord({k: Array(np.asarray(v)) for k, v in params.items()})


def from_arrays(record: ArrayRecord) -> dict[str, np.ndarray]:
  return {k: record[k].numpy() for k in record.keys()}


def site_key(node_config) -> str:
  key = node_config.get("site", node_config.get("partition-id"))
  if key is None:
    raise InputError("SuperNode node config has no site: start it with "
                     "--node-config='site=\"<name or index>\"'")
  return str(key)


def build_trainer(config, key: str, data_root: str = ""):
  """(SiteTrainer, site index, site name) of site `key` under `config`."""
  if data_root:
    config = ml_collections.ConfigDict(config.to_dict())
    config.task.data_root = data_root
  data = task_lib.load_dataset(config.task)
  sites = sites_lib.make_sites(data, config.federated)
  k = sites_lib.find_site(sites, key)
  total = config.federated.rounds * config.federated.local_steps
  return SiteTrainer(config, data, sites[k].splits, total,
                     sites_lib.vocabulary_indices(config.task, sites)), k, sites[k].name


def _trainer(msg: Message, context: Context):
  return trainer_for(str(msg.content["config"][CONFIG_KEY]), context)


def trainer_for(text: str, context: Context):
  """The cached (SiteTrainer, site index, site name) of this node under config `text`."""
  key = site_key(context.node_config)
  if (text, key) not in _TRAINERS:
    if any(cached != text for cached, _ in _TRAINERS):
      _TRAINERS.clear()  # a new run: drop the previous run's sites
    _TRAINERS[(text, key)] = build_trainer(config_from_json(text), key,
                                           str(context.node_config.get("data-root", "")))
  return _TRAINERS[(text, key)]


client_app = ClientApp()


@client_app.query()
def query(msg: Message, context: Context) -> Message:
  trainer, k, name = _trainer(msg, context)
  content = RecordDict({"arrays": to_arrays(trainer.params()),
                        "site": ConfigRecord({"index": k, "name": name})})
  return Message(content=content, reply_to=msg)


@client_app.train()
def train(msg: Message, context: Context) -> Message:
  if SECAGG_KEY in msg.content.config_records:  # a SecAgg+ round (see `secure`)
    from medjax.privacy.federated import secure  # pylint: disable=import-outside-toplevel
    return secaggplus_mod(msg, context, secure.legacy_train)
  trainer, k, _ = _trainer(msg, context)
  config = msg.content["config"]
  fed = trainer.config.federated
  server_round = int(config["server-round"])
  mu = float(config.get("proximal-mu", 0.0))
  trainer.start_round(from_arrays(msg.content["arrays"]), mu,
                      step=(server_round - 1) * fed.local_steps)
  metrics = trainer.train(fed.local_steps, seed=trainer.config.seed * 100003
                          + server_round * 101 + k)
  reply = MetricRecord({"num-examples": trainer.num_train,
                        "train-loss": metrics["loss"], "proximal": metrics["proximal"]})
  if "dp_epsilon" in metrics:  # client-side DP-SGD (config.privacy)
    reply["dp-epsilon"] = metrics["dp_epsilon"]
  content = RecordDict({"arrays": to_arrays(trainer.params()), "metrics": reply})
  return Message(content=content, reply_to=msg)


@client_app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
  trainer, k, name = _trainer(msg, context)
  split = str(msg.content["config"].get("split", "val"))
  trainer.set_params(from_arrays(msg.content["arrays"]))
  labels, probs = trainer.predict(split)
  pos, neg = histogram.score_histograms(labels, probs)
  metrics = MetricRecord({"num-examples": int(len(labels)), "site": k,
                          "auroc": ranking.roc_auc(labels, probs),
                          "deaths": int(np.sum(labels)), "hist-pos": pos, "hist-neg": neg})
  content = RecordDict({"metrics": metrics, "site": ConfigRecord({"name": name})})
  return Message(content=content, reply_to=msg)
