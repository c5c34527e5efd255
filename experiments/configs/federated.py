"""Federated EHR training across hospital sites (Flower): local, centralised, FedAvg, FedProx.

  python -m experiments.federated --config=experiments/configs/federated.py:p12_gru \
      --workdir=/tmp/fed_p12

Presets: quick (synthetic ICU stays split by their ICUType descriptor, GRU, a few
minutes on a CPU), p12_gru / p12_grud (PhysioNet 2012 set-a by ICU type, 4 sites),
eicu_retain (eICU demo by hospital: RETAIN on visit codes; hospitals with >=
`federated.min_site_stays` stays). The `task` section is the EHR task's
(experiments/configs/ehr.py); `federated` holds the sites, modes and rounds.
Each model trains `rounds * local_steps` steps (per site for local-only, per
client for FedAvg / FedProx); the round with the best validation AUROC is kept.
`federated.secure_aggregation=True` aggregates with SecAgg+ (then the last round is
kept); `privacy.enabled=True` (with `privacy.target_epsilon` or `noise_multiplier`)
trains every site with DP-SGD.
"""

import ml_collections

from experiments.configs import ehr as ehr_configs
from medjax.engine.config import base_config

PRESETS = ("quick", "p12_gru", "p12_grud", "eicu_retain")


def federated_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      site_split="physionet_icu_type",  # physionet_icu_type | eicu_hospital
      min_site_stays=0,  # eicu_hospital: hospitals with fewer stays are left out
      test_fraction=0.2,  # per site, stratified
      val_fraction=0.15,  # of each site's non-test stays (round selection)
      split_seed=0,
      modes="local,centralised,fedavg,fedprox",  # any subset, comma-separated
      rounds=20,
      local_steps=25,  # steps per round (per client)
      proximal_mu=0.1,  # FedProx (Li et al. tune it in {0.001, 0.01, 0.1, 1})
      num_cpus_per_client=1,  # Flower simulation (Ray) resources per ClientApp
      num_supernodes=0,  # 0: one per site
      round_timeout_s=3600.0,
      secure_aggregation=False,  # SecAgg+ (Flower's legacy workflow; no round selection)
      secagg_max_weight=5000.0,  # >= the largest site's training stays (weights quantised)
  ))


def get_config(arg: str = "quick") -> ml_collections.ConfigDict:
  preset = arg or "quick"
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r} ({', '.join(PRESETS)})")
  c = base_config()
  c.task = ehr_configs.task_config()
  c.federated = federated_config()
  c.optimizer.learning_rate = 1e-3
  c.optimizer.weight_decay = 1e-4
  c.optimizer.schedule = "constant"
  c.optimizer.grad_clip_norm = 1.0
  c.batch_size = 64
  c.log_every = 0
  c.eval_every = 0
  c.checkpoint_every = 0
  if preset == "quick":
    c.task.synthetic_stays = 800
    c.task.hidden = 32
    c.federated.rounds = 5
    c.federated.local_steps = 10
  elif preset in ("p12_gru", "p12_grud"):
    c.task.dataset = "physionet"
    c.task.model = "gru" if preset == "p12_gru" else "grud"
    c.task.dropout = 0.3
    c.optimizer.weight_decay = 1e-2
  else:
    c.task.dataset = "eicu"
    c.task.model = "retain"
    c.task.dropout = 0.3
    c.federated.site_split = "eicu_hospital"
    c.federated.min_site_stays = 20
    c.federated.test_fraction = 0.3
    c.federated.val_fraction = 0.25
    c.batch_size = 16
    c.federated.rounds = 15
    c.federated.local_steps = 10
  c.total_steps = c.federated.rounds * c.federated.local_steps
  return c
