"""The comparison: local-only, centralised, FedAvg and FedProx on the same per-site tests.

* local: each site trains alone on its training stays (selected on its own
  validation AUROC) and is tested on its own test stays;
* centralised: one model on the pooled training stays (selected on the pooled
  validation AUROC), tested on each site's test stays;
* fedavg / fedprox: Flower's simulation (`flwr.simulation.run_simulation`, Ray
  backend), one SuperNode per site, then the selected global model is tested on
  each site with that site's own preprocessing.

Every model gets `rounds * local_steps` steps of `batch_size` and is evaluated on
validation every `local_steps` steps; the round with the best validation AUROC is kept
(the latest one while the AUROC is undefined: a validation split without deaths). The pooled AUROC is over the union of the
sites' test stays (for local-only: each stay scored by its own site's model).
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import logging

from medjax.engine.errors import InputError
from medjax.ehr import task as task_lib
from medjax.metrics import ranking
from medjax.privacy.federated import sites as sites_lib
from medjax.privacy.federated import table
from medjax.privacy.federated.trainer import SiteTrainer

MODES = ("local", "centralised", "fedavg", "fedprox")


def parse_modes(text: str) -> list[str]:
  modes = [m.strip() for m in text.split(",") if m.strip()]
  unknown = [m for m in modes if m not in MODES]
  if unknown or not modes:
    raise InputError(f"config.federated.modes={text!r}: use a comma-separated subset of "
                     f"{', '.join(MODES)}")
  return modes


def _auroc(trainer, split="val", indices=None) -> float:
  return ranking.roc_auc(*trainer.predict(split, indices))


def train_selected(trainer: SiteTrainer, fed, score, name: str = "") -> dict:
  """Trains `rounds` x `local_steps` steps, keeps the parameters with the best `score()`."""
  best, best_round, history = -np.inf, 0, []
  params = trainer.params()
  for r in range(1, fed.rounds + 1):
    metrics = trainer.train(fed.local_steps)
    value = score()
    history.append(value)
    if value > best or best == -np.inf:  # an undefined AUROC (no death): the latest
      best, best_round, params = value if np.isfinite(value) else -np.inf, r, trainer.params()
    logging.info("%s round %d/%d: train loss %.4f, val AUROC %.4f", name, r, fed.rounds,
                 metrics["loss"], value)
  trainer.set_params(params)
  return {"best_round": best_round, "best_val_auroc": float(best), "val_auroc": history}


def _simulate(config, workdir, mode, num_sites):
  """(federated.json summary, selected global parameters) of a Flower simulation."""
  from flwr.simulation import run_simulation  # pylint: disable=import-outside-toplevel
  from medjax.privacy.federated import apps  # pylint: disable=import-outside-toplevel
  fed = config.federated
  run_simulation(
      server_app=(apps.make_server_app if not fed.secure_aggregation else
                  apps.make_secure_server_app)(config, workdir, mode, num_sites),
      client_app=apps.client_app, num_supernodes=fed.num_supernodes or num_sites,
      backend_config={"client_resources": {"num_cpus": fed.num_cpus_per_client,
                                           "num_gpus": 0.0}})
  path = os.path.join(workdir, "federated.json")
  if not os.path.exists(path):
    raise RuntimeError(f"the Flower simulation of {mode} wrote no {path}: see its log")
  with open(path, encoding="utf-8") as f:
    summary = json.load(f)
  with np.load(os.path.join(workdir, "global_params.npz")) as z:
    return summary, {k: z[k] for k in z.files}


def run(config, workdir: str) -> dict:
  """All `config.federated.modes`; writes the table and metrics.json; returns them."""
  fed = config.federated
  modes = parse_modes(fed.modes)
  data = task_lib.load_dataset(config.task)
  sites = sites_lib.make_sites(data, fed)
  total = fed.rounds * fed.local_steps
  os.makedirs(workdir, exist_ok=True)
  table.write_sites(sites, data.labels, workdir)
  trainers: dict[str, SiteTrainer] = {}

  def site_trainer(site):
    if site.name not in trainers:  # (code models: the federated modes' vocabulary)
      vocab = (sites_lib.vocabulary_indices(config.task, sites)
               if set(modes) & {"fedavg", "fedprox"} else None)
      trainers[site.name] = SiteTrainer(config, data, site.splits, total, vocab)
    return trainers[site.name]

  predictions, selection = {}, {}
  for mode in modes:
    logging.info("mode %s: training...", mode)
    if mode == "local":
      selection[mode] = {s.name: train_selected(site_trainer(s), fed,
                                                lambda s=s: _auroc(site_trainer(s)),
                                                f"local {s.name}")
                         for s in sites}
      predictions[mode] = {s.name: site_trainer(s).predict("test") for s in sites}
    elif mode == "centralised":
      central = SiteTrainer(config, data, sites_lib.pooled(sites), total)
      selection[mode] = train_selected(central, fed, lambda: _auroc(central), mode)
      predictions[mode] = {s.name: central.predict("test", s.splits["test"])
                           for s in sites}
    else:
      summary, params = _simulate(config, os.path.join(workdir, mode), mode, len(sites))
      selection[mode] = summary
      for s in sites:
        site_trainer(s).set_params(params)
      predictions[mode] = {s.name: site_trainer(s).predict("test") for s in sites}
    logging.info("mode %s: %s", mode, table.aurocs(predictions[mode]))
  return table.write_results(predictions, selection, sites, workdir, config)
