r"""Federated EHR training across hospital sites on Flower: local, centralised, FedAvg, FedProx.

  python -m experiments.federated --config=experiments/configs/federated.py:quick \
      --workdir=/tmp/fed_quick
  python -m experiments.federated --config=experiments/configs/federated.py:p12_gru \
      --workdir=/tmp/fed_p12 --config.federated.modes=fedavg,fedprox

FedAvg and FedProx run in Flower's simulation (Ray); the same ClientApp and
ServerApp run as separate processes with `flower-superlink` / `flower-supernode`
and `flwr run medjax/privacy/federated/flower_app` (see the README). Writes
`federated_table.md` / `.csv` (test AUROC per site and pooled), `sites.csv` and
`metrics.json` in the workdir.
"""

import os

from absl import flags
from absl import logging
from ml_collections import config_flags

from medjax.engine import runtime
from medjax.engine import workdir as workdir_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:preset].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  runtime.start(argv)
  workdir_lib.require_writable(_WORKDIR.value)
  from medjax.privacy.federated import experiment  # pylint: disable=import-outside-toplevel
  config = _CONFIG.value
  workdir_lib.save_config(_WORKDIR.value, config)
  experiment.run(config, _WORKDIR.value)
  with open(os.path.join(_WORKDIR.value, "federated_table.md"), encoding="utf-8") as f:
    print(f.read())
  logging.info("done")


if __name__ == "__main__":
  runtime.run(main)
