r"""Benchmarks: training speed of each task's main model, or accuracy of several configs.

Speed (default): compile time, step time, throughput, memory, FLOPs and MFU of
every task at the shapes it trains on (the README's table):

  python -m experiments.benchmark --workloads=unet_lung_ct_256,dmpnn_druglike,grud_p12_37var \
      --dtypes=float32,bfloat16 --out_dir=workdirs/benchmark

Accuracy comparison: variants (config overrides) x seeds of one experiment, run
with the experiment's own command, summarised as mean ± sd per metric
(experiments/bench/compare.py):

  python -m experiments.benchmark --mode=compare --experiment=ehr \
      --config=experiments/configs/ehr.py:quick --seeds=0,1,2 \
      --variants=gru:task.model=gru --variants=grud:task.model=grud \
      --out_dir=workdirs/compare_ehr

Patient simulators (env steps/s of the JAX T1D and ICU-Sepsis simulators at 1, 64,
1024 and 8192 parallel patients next to simglucose and icu-sepsis measured in the
same run, and PPO training throughput; experiments/bench/treatment_speed.py):

  python -m experiments.benchmark --mode=treatment --out_dir=workdirs/treatment_speed

Each workload is a task's main model on batches of its real shapes
(experiments/bench/workloads.py lists them; each row's `shape` says what one step
processes). The step is the engine's jitted, donated train
step on a mesh over all local devices. Step time is the median over `--steps`
timed steps after `--warmup` steps, each synchronised with `block_until_ready`.
Rows are written to `<out_dir>/benchmark.csv`, `benchmark.md` and appended to
`<out_dir>/results.jsonl`, so runs on different hardware can be compared.
`peak_mem_gib` is the device's measured peak (blank on a CPU, which keeps no such
statistics), `xla_mem_gib` XLA's compile-time buffers for one device; `mfu_pct` is
blank where the device's peak FLOP/s is unknown (CPUs): `--peak_tflops` gives it.
The notes under the table in `benchmark.md` say which columns are blank and why.
"""

import csv
import datetime
import json
import os
import time

from absl import app
from absl import flags

from medjax.engine import runtime
from medjax.engine import workdir as workdir_lib

FLAGS = flags.FLAGS
# Every task at its real shapes (experiments/bench/workloads.py: REAL_SHAPES).
DEFAULT_WORKLOADS = ("unet_lung_ct_256", "dmpnn_druglike", "grud_p12_37var")


def _define_flags():
  """Registered only when run as a program: tests import this module beside the
  experiments, whose flags (--config, --mode) have the same names."""
  flags.DEFINE_enum("mode", "speed", ["speed", "compare", "treatment"], "What to measure "
                    "(treatment: patient-simulator and PPO env steps/s, "
                    "experiments/bench/treatment_speed.py).")
  flags.DEFINE_list("workloads", list(DEFAULT_WORKLOADS), "Workloads to time (see "
                    "experiments/bench/workloads.py); default: every task at its real shapes.")
  flags.DEFINE_list("batch_sizes", [], "Global batch sizes; default: each workload's "
                    "own (U-Net 8, D-MPNN 64, GRU-D 128).")
  flags.DEFINE_list("dtypes", ["float32"], "Compute dtypes (float32, bfloat16).")
  flags.DEFINE_integer("steps", 20, "Timed steps.")
  flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
  flags.DEFINE_float("peak_tflops", None, "Dense peak TFLOP/s of one device for the "
                     "dtype, for mfu_pct on devices the benchmark does not know (CPUs).")
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
_GIB = 2**30


def _peak(device_kind, dtype, peak_tflops=None):
  """Peak FLOP/s of one device: --peak_tflops if given, else the table's, else None."""
  if peak_tflops:
    return peak_tflops * 1e12
  for (prefix, kind), flops in _PEAK_FLOPS.items():
    if device_kind.startswith(prefix) and kind == dtype:
      return flops
  return None


def _memory_gib(compiled, device):
  """(measured peak of the device, XLA's buffers for one device's program: arguments,
  outputs and temporaries, donated inputs counted once), GiB; "" where not known (the
  CPU backend keeps no memory statistics)."""
  stats = device.memory_stats() or {}
  measured = (round(stats["peak_bytes_in_use"] / _GIB, 2)
              if "peak_bytes_in_use" in stats else "")
  try:
    analysis = compiled.memory_analysis()
  except (NotImplementedError, AttributeError):  # backends without buffer assignment
    analysis = None
  if analysis is None:
    return measured, ""
  # Not peak_memory_in_bytes: the CPU backend leaves the temporaries out of it.
  total = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
           + analysis.temp_size_in_bytes - analysis.alias_size_in_bytes)
  return measured, round(total / _GIB, 3)


def _time_steps(compiled, state, batches, steps, warmup):
  """Median seconds of `steps` synchronised steps after `warmup` untimed ones."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  for i in range(warmup):
    state, metrics = compiled(state, batches[i % 2])
    jax.block_until_ready(metrics)
  times = []
  for i in range(steps):
    t0 = time.perf_counter()
    state, metrics = compiled(state, batches[i % 2])
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def time_workload(name, batch_size, dtype, steps, warmup, peak_tflops=None):
  """Returns one result row for workload `name` at `batch_size` and `dtype`."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from experiments.bench import flops as flops_lib  # pylint: disable=import-outside-toplevel
  from experiments.bench import workloads  # pylint: disable=import-outside-toplevel
  from medjax.engine import config as config_lib  # pylint: disable=import-outside-toplevel
  from medjax.engine import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
  from medjax.engine import steps as steps_lib  # pylint: disable=import-outside-toplevel

  name = workloads.resolve(name)
  task = workloads.build(name, dtype, batch_size)
  config = config_lib.base_config()
  config.compute_dtype = dtype
  mesh = mesh_lib.make_mesh(config.mesh)
  state, train_step, _ = steps_lib.build(task, config, mesh)
  rng = np.random.default_rng(0)
  host = [task.make_batch(batch_size, rng) for _ in range(2)]
  batches = [mesh_lib.shard_batch(b, mesh) for b in host]
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
  step_s = _time_steps(compiled, state, batches, steps, warmup)
  device = jax.devices()[0]
  peak_mem, xla_mem = _memory_gib(compiled, device)
  peak = _peak(device.device_kind, dtype, peak_tflops)
  return {
      "date": datetime.date.today().isoformat(), "workload": name,
      "shape": task.shape(host[0]), "device": device.device_kind,
      "devices": jax.device_count(), "batch_size": batch_size, "dtype": dtype,
      "compile_s": round(compile_s, 2), "step_ms": round(step_s * 1e3, 2),
      "examples_per_s": round(batch_size / step_s, 1),
      "peak_mem_gib": peak_mem, "xla_mem_gib": xla_mem,
      "gflops_per_step": float(f"{flops / 1e9:.4g}"),
      "xla_gflops_per_step": float(f"{xla_flops / 1e9:.4g}"),
      "mfu_pct": round(100 * flops / step_s / (peak * jax.device_count()), 1)
      if peak else "", "jax": jax.__version__}


def notes(rows):
  """Footnotes saying why a column is blank, and what the memory columns measure."""
  lines = []
  no_stats = sorted({r["device"] for r in rows if r["peak_mem_gib"] == ""})
  if no_stats:
    lines.append(f"peak_mem_gib: blank on {', '.join(no_stats)}: the backend keeps no "
                 "device memory statistics (a CPU has none).")
  lines.append("xla_mem_gib: the buffers XLA assigns one device's share of the step "
               "at compile time (arguments, outputs and temporaries), on every backend.")
  no_peak = sorted({(r["device"], r["dtype"]) for r in rows if r["mfu_pct"] == ""})
  if no_peak:
    kinds = ", ".join(f"{device} {dtype}" for device, dtype in no_peak)
    lines.append(f"mfu_pct: blank on {kinds}: no peak FLOP/s is known for it (none for "
                 "CPUs); give one with --peak_tflops=<dense TFLOP/s of one device>.")
  return lines


def write_results(rows, out_dir):
  """benchmark.csv and benchmark.md (the table and its notes); appends results.jsonl."""
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "benchmark.csv"), "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
  lines += ["| " + " | ".join(str(v) for v in row.values()) + " |" for row in rows]
  lines += ["", *(f"- {note}" for note in notes(rows))]
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


def treatment():
  """Env steps/s at each of --batch_sizes parallel patients (default 1, 64, 1024, 8192)."""
  from experiments.bench import treatment_speed  # pylint: disable=import-outside-toplevel
  batches = [int(b) for b in FLAGS.batch_sizes] or [1, 64, 1024, 8192]
  print(treatment_speed.write(treatment_speed.rows(batches), FLAGS.out_dir))


def main(argv):
  del argv
  if not FLAGS.dry_run:
    workdir_lib.require_writable(FLAGS.out_dir, "--out_dir")
  if FLAGS.mode == "compare":
    compare()
    return
  if FLAGS.mode == "treatment":
    treatment()
    return
  runtime.configure_xla()
  from experiments.bench import workloads  # pylint: disable=import-outside-toplevel
  names = [workloads.resolve(name) for name in FLAGS.workloads]  # InputError if unknown
  rows = [time_workload(name, int(bs), dtype, FLAGS.steps, FLAGS.warmup, FLAGS.peak_tflops)
          for name in names
          for bs in (FLAGS.batch_sizes or [workloads.DEFAULT_BATCH[name]])
          for dtype in FLAGS.dtypes]
  rows = [row for row in rows if row is not None]
  write_results(rows, FLAGS.out_dir)


if __name__ == "__main__":
  _define_flags()
  runtime.run(main)
