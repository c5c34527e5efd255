"""The Flower apps: `client_app` (see `client`) and the `ServerApp`s.

`make_server_app(config, workdir, mode, min_nodes)` is the simulation's server (a
Python config in hand). `server_app` is the deployment's: it reads its Flower run
config (`flower_app/pyproject.toml`, overridable with `flwr run --run-config`):

  config     "experiments/configs/federated.py:p12_gru" (relative to the medjax
             checkout, or absolute)
  overrides  "federated.rounds=10; task.model=grud" (`;`-separated config fields)
  mode       "fedavg" | "fedprox"
  workdir    where `global_params.npz` and `federated.json` go (on the SuperLink host)
  min-nodes  SuperNodes to wait for (one per site)

`federated.secure_aggregation=True` (in `overrides`) runs the SecAgg+ variant.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

import medjax
from medjax.engine.errors import InputError
from medjax.privacy.federated.client import client_app  # noqa: F401  (re-exported)
from medjax.privacy.federated.secure import make_secure_server_app, run_secure  # noqa: F401
from medjax.privacy.federated.server import run_federated

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(medjax.__file__)))


def load_config(spec: str, overrides: str = ""):
  """`path.py[:preset]` (relative to the cwd or the medjax checkout) with overrides."""
  path, _, preset = spec.partition(":")
  if not os.path.isabs(path) and not os.path.exists(path):
    path = os.path.join(REPO_ROOT, path)
  if not os.path.exists(path):
    raise InputError(f"run config 'config'={spec!r}: {path} not found")
  if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)  # config files import experiments.configs.*
  module_spec = importlib.util.spec_from_file_location("_medjax_federated_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(preset)
  for item in filter(None, (s.strip() for s in overrides.split(";"))):
    _override(config, item)
  return config


def _override(config, item: str) -> None:
  key, sep, text = item.partition("=")
  *parents, leaf = key.strip().split(".")
  node = config
  for name in parents:
    node = node.get(name) if hasattr(node, "get") else None
  if not sep or node is None or leaf not in node:
    raise InputError(f"run config 'overrides': {item!r} is not <existing.field>=<value>")
  old = node[leaf]
  text = text.strip()
  if isinstance(old, str):
    value = text
  else:
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as e:
      raise InputError(f"run config 'overrides': {item!r}: {text!r} is not a value") from e
    value = type(old)(value) if isinstance(old, (int, float)) and not isinstance(
        old, bool) else value
  node[leaf] = value


def make_server_app(config, workdir: str, mode: str, min_nodes: int) -> ServerApp:
  app = ServerApp()

  @app.main()
  def main(grid: Grid, context: Context) -> None:
    del context
    run_federated(grid, config, workdir, mode, min_nodes)

  return app


server_app = ServerApp()


@server_app.main()
def _deployment_main(grid: Grid, context: Context) -> None:
  run = context.run_config
  config = load_config(str(run["config"]), str(run.get("overrides", "")))
  args = (config, os.path.abspath(str(run["workdir"])), str(run["mode"]),
          int(run["min-nodes"]))
  if config.federated.secure_aggregation:
    run_secure(grid, context, *args)
  else:
    run_federated(grid, *args)
