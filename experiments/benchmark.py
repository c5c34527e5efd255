r"""Benchmarks: training speed of each task's main model, or accuracy of several configs.

Speed (default): compile time, step time, throughput, memory, FLOPs and MFU.

  python -m experiments.benchmark --workloads=unet_lung_ct,dmpnn_tpsa,grud_synthetic \
      --dtypes=float32,bfloat16 --out_dir=workdirs/benchmark

Accuracy comparison: variants (config overrides) x seeds of one experiment, run
with the experiment's own command, summarised as mean ± sd per metric
(experiments/bench/compare.py):

  python -m experiments.benchmark --mode=compare --experiment=ehr \
      --config=experiments/configs/ehr.py:quick --seeds=0,1,2 \
      --variants=gru:task.model=gru --variants=grud:task.model=grud \
      --out_dir=workdirs/compare_ehr

Each workload is a task's main model on random batches of the real shapes
(experiments/bench/workloads.py). The step is the engine's jitted, donated train
step on a mesh over all local devices. Step time is the median over `--steps`
timed steps after `--warmup` steps, each synchronised with `block_until_ready`.
Rows are written to `<out_dir>/benchmark.csv`, `benchmark.md` and appended to
`<out_dir>/results.jsonl`, so runs on different hardware can be compared.
"""

import csv
import datetime
import json
import os
import time

from absl import app
from absl import flags

from medjax.engine import runtime

FLAGS = flags.FLAGS


def _define_flags():
  """Registered only when run as a program: tests import this module beside the
  experiments, whose flags (--config, --mode) have the same names."""
  flags.DEFINE_enum("mode", "speed", ["speed", "compare"], "What to measure.")
  flags.DEFINE_list("workloads", ["unet_lung_ct"], "Workloads to time.")
  flags.DEFINE_list("batch_sizes", [], "Global batch sizes; default: each workload's "
                    "own (U-Net 8, D-MPNN 64, GRU-D 128).")
  flags.DEFINE_list("dtypes", ["float32"], "Compute dtypes (float32, bfloat16).")
  flags.DEFINE_integer("steps", 20, "Timed steps.")
  flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
  flags.DEFINE_string("out_dir", "workdirs/benchmark", "Where results go.")
  flags.DEFINE_enum("experiment", None, ["segmentation", "molecule", "ehr"],
                    "compare: the experiment to run.")
  flags.DEFINE_string("config", None, "compare: config file[:preset].")
  flags.DEFINE_multi_string("variants", [], "compare: [label:]key=value[,key=value] "
                            "overrides of --config.; one flag per variant (none: the "
                            "config as is).")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "compare: values of config.seed.")
  flags.DEFINE_list("metrics", [], "compare: metrics in the table (default: every final "
                    "metric the runs share).")
  flags.DEFINE_bool("dry_run", False, "compare: print the runs' commands only.")


# Dense peak FLOP/s by (device kind prefix, compute dtype); fp32 on Hopper counts TF32.
_PEAK_FLOPS = {("NVIDIA H100", "bfloat16"): 989e12, ("NVIDIA H100", "float32"): 494e12,
               ("NVIDIA H200", "bfloat16"): 989e12, ("NVIDIA H200", "float32"): 494e12,
               ("TPU v5 lite", "bfloat16"): 197e12, ("TPU v4", "bfloat16"): 275e12}


def _peak(device_kind, dtype):
  for (prefix, kind), flops in _PEAK_FLOPS.items():
    if device_kind.startswith(prefix) and kind == dtype:
      return flops
  return None


def time_workload(name, batch_size, dtype, steps, warmup):
  """Returns one result row for `name` at `batch_size` and `dtype`."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from experiments.bench import flops as flops_lib  # pylint: disable=import-outside-toplevel
  from experiments.bench import workloads  # pylint: disable=import-outside-toplevel
  from medjax.engine import config as config_lib  # pylint: disable=import-outside-toplevel
  from medjax.engine import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
  from medjax.engine import steps as steps_lib  # pylint: disable=import-outside-toplevel

  kwargs = {"batch_size": batch_size} if name != "unet_lung_ct" else {}
  task = workloads.WORKLOADS[name](compute_dtype=dtype, **kwargs)
  config = config_lib.base_config()
  config.compute_dtype = dtype
  mesh = mesh_lib.make_mesh(config.mesh)
  state, train_step, _ = steps_lib.build(task, config, mesh)
  rng = np.random.default_rng(0)
  batches = [mesh_lib.shard_batch(task.make_batch(batch_size, rng), mesh) for _ in range(2)]
  t0 = time.perf_counter()
  lowered = train_step.lower(state, batches[0])
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t0
  # Matmul + convolution FLOPs from the jaxpr, scan bodies times their length
  # (XLA's cost analysis, also reported, counts a loop body once).
  flops = float(flops_lib.count(train_step, state, batches[0]))
  cost = lowered.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  xla_flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
  for i in range(warmup):
    state, metrics = compiled(state, batches[i % 2])
  jax.block_until_ready(metrics)
  times = []
  for i in range(steps):
    t0 = time.perf_counter()
    state, metrics = compiled(state, batches[i % 2])
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  step_s = float(np.median(times))
  device = jax.devices()[0]
  stats = device.memory_stats() or {}
  peak = _peak(device.device_kind, dtype)
  return {
      "date": datetime.date.today().isoformat(), "workload": name, "device": device.device_kind,
      "devices": jax.device_count(), "batch_size": batch_size, "dtype": dtype,
      "compile_s": round(compile_s, 2), "step_ms": round(step_s * 1e3, 2),
      "examples_per_s": round(batch_size / step_s, 1),
      "peak_mem_gib": round(stats["peak_bytes_in_use"] / 2**30, 2)
      if "peak_bytes_in_use" in stats else "",
      "gflops_per_step": float(f"{flops / 1e9:.4g}"),
      "xla_gflops_per_step": float(f"{xla_flops / 1e9:.4g}"),
      "mfu_pct": round(100 * flops / step_s / (peak * jax.device_count()), 1)
      if peak else "", "jax": jax.__version__}


def write_results(rows, out_dir):
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "benchmark.csv"), "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
  lines += ["| " + " | ".join(str(v) for v in row.values()) + " |" for row in rows]
  with open(os.path.join(out_dir, "benchmark.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(out_dir, "results.jsonl"), "a", encoding="utf-8") as f:
    f.writelines(json.dumps(row) + "\n" for row in rows)
  print("\n".join(lines))


def compare():
  from experiments.bench import compare as compare_lib  # pylint: disable=import-outside-toplevel
  if not (FLAGS.experiment and FLAGS.config):
    raise app.UsageError("--mode=compare needs --experiment and --config")
  try:
    variants = [compare_lib.parse_variant(v) for v in FLAGS.variants or [""]]
    seeds = [int(s) for s in FLAGS.seeds]
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  results = compare_lib.run_all(FLAGS.experiment, FLAGS.config, variants, seeds,
                                FLAGS.out_dir, FLAGS.dry_run)
  if FLAGS.dry_run:
    return
  rows = compare_lib.summarize(results, FLAGS.metrics)
  context = {"date": datetime.date.today().isoformat(), "experiment": FLAGS.experiment,
             "config": FLAGS.config, "seeds": seeds}
  print(compare_lib.write(rows, FLAGS.out_dir, context))


def main(argv):
  del argv
  if FLAGS.mode == "compare":
    compare()
    return
  runtime.configure_xla()
  from experiments.bench import workloads  # pylint: disable=import-outside-toplevel
  rows = [time_workload(name, int(bs), dtype, FLAGS.steps, FLAGS.warmup)
          for name in FLAGS.workloads
          for bs in (FLAGS.batch_sizes or [workloads.DEFAULT_BATCH[name]])
          for dtype in FLAGS.dtypes]
  rows = [row for row in rows if row is not None]
  write_results(rows, FLAGS.out_dir)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
