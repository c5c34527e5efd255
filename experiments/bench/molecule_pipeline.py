r"""D-MPNN training throughput: input pipeline vs train step, before / after, vs Chemprop.

In one process, for the molecule task of `--config` (molecules/s, real molecules):

  (a)  pack        the training stream alone (featurised graphs -> padded blocks);
  (a') pack+xfer   the same, each batch moved to the device and waited for;
  (b)  step        the engine's jitted train step alone, on batches already on the device;
  (c)  pipeline    both, as medjax/engine/train.py runs them;

each for the old path (`old`: blocks packed one at a time with `BlockPacker.pack`,
one `make_array_from_process_local_data` per array) and the new (`new`: blocks
packed `batching.BATCHES_AHEAD` batches per vectorised pass, one `device_put`),
and pipeline / step in wall time and in process CPU time ("cpu ratio": molecules per
CPU second, all threads; steadier than wall time on a shared machine). Step, old and
new take turns within each round. Featurisation (RDKit, cold) is timed once: the task caches its
graphs on disk, so training never featurises. Rounds alternate with Chemprop 2.x
(experiments/bench/peers/chemprop_train_speed.py, in --peer_python) training on the
same training split, batch size, hidden size and depth, with --threads threads:

  python -m experiments.bench.molecule_pipeline \
      --config=experiments/configs/molecule.py:esol \
      --config.task.data_dir=../shared/data/moleculenet --config.task.descriptors=False \
      --batch_size=50 --rounds=2

The medjax side runs on every CPU core JAX sees (pin with `taskset -c 0,1`). Both
paths give the same batches (checked here on the first few, and in
tests/molecule/test_packing.py). Prints a table; `--out` also writes JSON.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import tempfile

from absl import flags
from ml_collections import config_flags
import numpy as np

from medjax.engine import runtime
from medjax.engine.errors import InputError

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/molecule.py:esol", "Molecule config[:preset].",
    lock_config=False)
_BATCH = flags.DEFINE_integer("batch_size", 50, "Molecules a step (Chemprop v1's 50).")
_STEPS = flags.DEFINE_integer("steps", 36, "Batches per measurement.")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "medjax / Chemprop rounds, alternated.")
_CHEMPROP = flags.DEFINE_bool("chemprop", True, "Run the Chemprop rounds.")
_PEER_PYTHON = flags.DEFINE_string("peer_python", "/work/peers/bin/python",
                                   "Python with chemprop==2.3.1 (peers/requirements.txt).")
_EPOCHS = flags.DEFINE_integer("chemprop_epochs", 3, "Chemprop epochs a round (the first "
                               "is warm-up, not timed).")
_THREADS = flags.DEFINE_integer("threads", 2, "PyTorch threads for Chemprop.")
_OUT = flags.DEFINE_string("out", "", "Also write the results here (JSON).")

PEER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers",
                    "chemprop_train_speed.py")
COLUMNS = ("pack", "pack+xfer", "step", "pipeline", "pipeline/step", "cpu ratio")
RATIOS = ("pipeline/step", "cpu ratio")


def _streams(task, batching, round_index):
  """The old (one block at a time) and new (packed ahead) training streams."""
  bs = _BATCH.value
  old = batching.training_stream(task.packer(task.graphs_for_batch(bs)), task.split["train"],
                                 task.n_blocks, round_index, batches_ahead=0)
  return iter(old), iter(task.train_dataset(bs, round_index))


def _check_same(task, batching) -> None:
  old, new = _streams(task, batching, 0)
  for _ in range(5):
    a, b = next(old), next(new)
    if sorted(a) != sorted(b) or any(not np.array_equal(a[k], b[k]) for k in a):
      raise AssertionError("the old and new training streams differ")


def _medjax_round(setup, r, chunks: int = 3):
  """One round: {path: {column: molecules/s or ratio}}. Step, old and new take turns
  in `chunks` chunks (order alternating), so that a change of load hits all three."""
  from medjax.engine import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
  from medjax.molecule import batching  # pylint: disable=import-outside-toplevel
  from medjax.molecule import benchmark  # pylint: disable=import-outside-toplevel
  task, mesh, train_step = setup["task"], setup["mesh"], setup["step"]
  per = max(1, _STEPS.value // chunks)
  transfers = {"old": benchmark.per_array_transfer, "new": mesh_lib.shard_batch}
  clocks = {k: benchmark.Clock() for k in ("step", *(f"{p}/{c}" for p in transfers
                                                    for c in COLUMNS[:4] if c != "step"))}
  streams = dict(zip(("old", "new"), _streams(task, batching, r)))
  for_step = iter(task.train_dataset(_BATCH.value, 1000 + r))
  for c in range(chunks):
    host = [next(for_step) for _ in range(per)]
    device = [mesh_lib.shard_batch(b, mesh) for b in host]
    setup["state"] = benchmark.time_step(clocks["step"], setup["state"], train_step, device,
                                         [int(b["_mask"].sum()) for b in host])
    del device
    for path in (("old", "new") if (r + c) % 2 == 0 else ("new", "old")):
      benchmark.time_host(clocks[f"{path}/pack"], streams[path], per)
      benchmark.time_host(clocks[f"{path}/pack+xfer"], streams[path], per, mesh,
                          transfers[path])
      setup["state"] = benchmark.time_pipeline(clocks[f"{path}/pipeline"], setup["state"],
                                               train_step, streams[path], per, mesh,
                                               transfers[path])
  step, step_cpu = clocks["step"].rates()
  rows = {}
  for path in transfers:
    row = {c: clocks[f"{path}/{c}"].rates()[0] for c in ("pack", "pack+xfer", "pipeline")}
    pipe_cpu = clocks[f"{path}/pipeline"].rates()[1]
    row.update({"step": step, "pipeline/step": row["pipeline"] / step,
                "cpu ratio": pipe_cpu / step_cpu})
    rows[path] = {c: row[c] for c in COLUMNS}
  return rows


def _setup(config):
  import jax  # pylint: disable=import-outside-toplevel
  from medjax.engine import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
  from medjax.engine import steps as steps_lib  # pylint: disable=import-outside-toplevel
  from medjax.molecule import batching, benchmark  # pylint: disable=import-outside-toplevel
  from medjax.molecule import task as task_lib  # pylint: disable=import-outside-toplevel
  config.batch_size = _BATCH.value
  config.total_steps = max(config.total_steps, 10**6)
  task = task_lib.MoleculeTask(config.task, config.batch_size)
  _check_same(task, batching)
  mesh = mesh_lib.make_mesh(config.mesh)
  state, train_step, _ = steps_lib.build(task, config, mesh)
  data = iter(task.train_dataset(config.batch_size, 0))
  for _ in range(3):  # compile
    state, metrics = train_step(state, mesh_lib.shard_batch(next(data), mesh))
  jax.block_until_ready(metrics)
  featurize = benchmark.featurization(task.data.smiles)["featurize/molecules_per_sec"]
  return {"task": task, "mesh": mesh, "step": train_step, "state": state,
          "featurize": featurize, "devices": jax.device_count()}


def _write_training_csv(task, path):
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["smiles", "target"])
    for i in task.split["train"]:
      writer.writerow([task.data.smiles[i], repr(float(task.data.targets[i, 0]))])


def _chemprop_round(config, train_csv):
  cmd = [_PEER_PYTHON.value, PEER, f"--csv={train_csv}", f"--epochs={_EPOCHS.value}",
         f"--batch={_BATCH.value}", f"--hidden={config.task.hidden}",
         f"--depth={config.task.depth}", f"--threads={_THREADS.value}"]
  result = subprocess.run(cmd, capture_output=True, text=True, check=False)
  lines = [l for l in result.stdout.splitlines() if l.startswith("{")]
  if result.returncode or not lines:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
  return json.loads(lines[-1])


def _table(rounds, chemprop) -> str:
  lines = ["| round | path | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
  for r, rows in enumerate(rounds):
    for path, row in rows.items():
      cells = [f"{row[c]:.2f}" if c in RATIOS else f"{row[c]:.0f}" for c in COLUMNS]
      lines.append(f"| {r} | {path} | " + " | ".join(cells) + " |")
  for path in ("old", "new"):
    median = {c: float(np.median([rows[path][c] for rows in rounds])) for c in COLUMNS}
    cells = [f"{median[c]:.2f}" if c in RATIOS else f"{median[c]:.0f}"
             for c in COLUMNS]
    lines.append(f"| median | {path} | " + " | ".join(cells) + " |")
  if chemprop:
    cp = float(np.median([c["molecules_per_s"] for c in chemprop]))
    per_round = ", ".join(f"{c['molecules_per_s']:.0f}" for c in chemprop)
    new = float(np.median([rows["new"]["pipeline"] for rows in rounds]))
    old = float(np.median([rows["old"]["pipeline"] for rows in rounds]))
    lines += ["", f"Chemprop (its MoleculeDataset + dataloader + Lightning training step): "
              f"{cp:.0f} molecules/s (rounds: {per_round}); medjax pipeline / Chemprop: "
              f"new {new / cp:.2f}x, old {old / cp:.2f}x"]
  return "\n".join(lines)


def main(argv):
  runtime.start(argv)
  config = _CONFIG.value
  if _CHEMPROP.value and not os.path.exists(_PEER_PYTHON.value):
    raise InputError(f"--peer_python={_PEER_PYTHON.value} does not exist: give a Python with "
                     "chemprop (experiments/bench/peers/requirements.txt), or --nochemprop")
  setup = _setup(config)
  rounds, chemprop = [], []
  with tempfile.TemporaryDirectory() as scratch:
    train_csv = os.path.join(scratch, "train.csv")
    _write_training_csv(setup["task"], train_csv)
    for r in range(_ROUNDS.value):
      rounds.append(_medjax_round(setup, r))
      print(f"round {r} medjax: {json.dumps(rounds[-1])}", flush=True)
      if _CHEMPROP.value:
        chemprop.append(_chemprop_round(config, train_csv))
        print(f"round {r} chemprop: {json.dumps(chemprop[-1])}", flush=True)
  print(f"\n{config.task.dataset}: {len(setup['task'].split['train'])} training molecules, "
        f"batch {_BATCH.value}, hidden {config.task.hidden}, depth {config.task.depth}, "
        f"{setup['devices']} JAX device(s), {os.cpu_count()} CPU cores; molecules/s, "
        f"{_STEPS.value} batches a measurement. Featurisation (RDKit, once, cached): "
        f"{setup['featurize']:.0f} molecules/s.")
  print(_table(rounds, chemprop))
  if _OUT.value:
    with open(_OUT.value, "w", encoding="utf-8") as f:
      json.dump({"rounds": rounds, "chemprop": chemprop,
                 "featurize_molecules_per_s": setup["featurize"]}, f, indent=1)


if __name__ == "__main__":
  runtime.run(main)
