"""experiments.federated end to end: bad input, the Flower simulation, a localhost deployment.

All slow (each starts JAX, and Ray or Flower's SuperLink / SuperNodes): `pytest -m slow`.
"""

import importlib.util
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[2]
_BIN = pathlib.Path(sys.executable).parent
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Flower's simulation needs Ray: pip install -e '.[federated]'")
_TINY = ("federated.rounds=1; federated.local_steps=2; task.synthetic_stays=160; "
         "task.hidden=8; batch_size=16")


def _env(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "MEDJAX_TRACEBACK"}
  env.update(FLWR_TELEMETRY_ENABLED="0", FLWR_HOME=str(tmp_path / "flwr_home"),
             PATH=f"{_BIN}{os.pathsep}{env.get('PATH', '')}")
  return env


def _main(tmp_path, *args, timeout=900):
  return subprocess.run(
      [sys.executable, "-m", "experiments.federated",
       "--config=experiments/configs/federated.py:quick", f"--workdir={tmp_path / 'w'}",
       *args], cwd=_ROOT, env=_env(tmp_path), capture_output=True, text=True,
      timeout=timeout)


@pytest.mark.slow
@pytest.mark.parametrize("flag, message", [
    ("--config.federated.site_split=by_ward",
     "error: config.federated.site_split='by_ward': unknown; use one of "
     "physionet_icu_type | eicu_hospital"),
    ("--config.federated.modes=local,fedsgd",
     "error: config.federated.modes='local,fedsgd': use a comma-separated subset of "
     "local, centralised, fedavg, fedprox"),
    ("--config.task.synthetic_stays=12",
     "error: federated site 'Coronary Care' has"),
])
def test_bad_input_is_one_message(tmp_path, flag, message):
  result = _main(tmp_path, flag)
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  assert message in result.stderr, result.stderr[-3000:]


@pytest.mark.slow
@needs_ray
def test_simulation_writes_the_table(tmp_path):
  flags = [f"--config.{item.strip().replace(' ', '')}" for item in _TINY.split(";")]
  result = _main(tmp_path, *flags)
  assert result.returncode == 0, result.stderr[-5000:]
  workdir = tmp_path / "w"
  metrics = json.loads((workdir / "metrics.json").read_text())
  assert set(metrics["test_auroc"]) == {"local", "centralised", "fedavg", "fedprox"}
  for mode in ("fedavg", "fedprox"):
    summary = json.loads((workdir / mode / "federated.json").read_text())
    # The server's per-site test AUROC (computed on the clients) is the driver's.
    for site, row in summary["test"]["sites"].items():
      assert row["auroc"] == pytest.approx(metrics["test_auroc"][mode][site], abs=1e-6)
  table = (workdir / "federated_table.md").read_text()
  assert "| pooled |" in table and "| Surgical ICU |" in table


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _start(args, log, env):
  return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=_ROOT,
                          start_new_session=True)


@pytest.mark.slow
def test_localhost_deployment_one_round(tmp_path):
  env = _env(tmp_path)
  link_port = _free_port()
  (tmp_path / "flwr_home").mkdir()
  (tmp_path / "flwr_home" / "config.toml").write_text(
      f'[superlink]\ndefault = "medjax-test"\n\n[superlink.medjax-test]\n'
      f'address = "127.0.0.1:{link_port}"\ninsecure = true\n')
  procs = []
  try:
    with open(tmp_path / "processes.log", "w") as log:
      procs.append(_start([str(_BIN / "flower-superlink"), "--insecure",
                           "--disable-runtime-dependency-installation",
                           f"--port={link_port}"], log, env))
      time.sleep(5)
      for site in (0, 3):
        procs.append(_start([str(_BIN / "flower-supernode"), "--insecure",
                             f"--superlink=127.0.0.1:{link_port}", f"--port={_free_port()}",
                             f"--node-config=site={site}"], log, env))
      out = tmp_path / "server_out"
      run = subprocess.run(
          [str(_BIN / "flwr"), "run", "medjax/privacy/federated/flower_app", "medjax-test",
           "--stream", "--run-config",
           f'mode="fedprox" min-nodes=2 workdir="{out}" overrides="{_TINY}"'],
          cwd=_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((out / "federated.json").read_text())
    assert summary["mode"] == "fedprox" and summary["best_round"] == 1
    assert set(summary["test"]["sites"]) == {"Coronary Care", "Surgical ICU"}
    assert (out / "global_params.npz").exists()
  finally:
    for p in reversed(procs):  # each in its own session: its children go with it
      try:
        os.killpg(p.pid, 15)
      except ProcessLookupError:
        pass
      p.wait(timeout=30)


@pytest.mark.slow
@needs_ray
def test_secure_aggregation_gives_the_plain_fedavg_model(tmp_path):
  import numpy as np  # pylint: disable=import-outside-toplevel
  flags = [f"--config.{item.strip().replace(' ', '')}" for item in _TINY.split(";")]
  models = []
  for secure in (False, True):
    out = tmp_path / f"secure_{secure}"
    result = subprocess.run(
        [sys.executable, "-m", "experiments.federated",
         "--config=experiments/configs/federated.py:quick", f"--workdir={out}", *flags,
         "--config.federated.modes=fedavg", f"--config.federated.secure_aggregation={secure}",
         "--config.federated.secagg_max_weight=100"],
        cwd=_ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    with np.load(out / "fedavg" / "global_params.npz") as z:
      models.append({k: z[k] for k in z.files})
  plain, secure = models
  assert plain.keys() == secure.keys()
  # SecAgg+ quantises each site's weight/max_weight-scaled parameters in [-8, 8] with
  # 2^22 levels: 4 sites of ~25 training stays (weights ~0.25 of 100) sum to a total
  # weight ~1, so the mean is off by at most ~4 * 16 / 2^22 / 1 = 1.5e-5 (x2 margin).
  step = 16.0 / 2**22
  for key in plain:
    np.testing.assert_allclose(secure[key], plain[key], atol=8 * step)
