"""3D U-Net training step: medjax vs MONAI's BasicUNet, side by side.

medjax `UNet(spatial_dims=3, features=(32, 32, 64, 128, 256), norm='instance')`
is MONAI `BasicUNet`'s default design (experiments/bench/peers/monai_unet3d.py
says layer for layer). One step = forward, Dice + CE loss, backward, Adam.

  python -m experiments.bench.unet3d_cpu                       # one medjax run
  python -m experiments.bench.unet3d_cpu --conv_impl slices
  python -m experiments.bench.unet3d_cpu --compare --rounds 3  # medjax variants vs MONAI

--compare runs every variant in its own process (so XLA_FLAGS apply to it
alone), round by round (plain, ..., MONAI, then again), and prints each
variant's images/s and its ratio to MONAI in the same round, median [min-max]
over rounds. MONAI runs in the peer venv given by --peer_python
(experiments/bench/peers/requirements.txt).

medjax runs add the CPU flag of `medjax.engine.runtime.configure_xla` as
medjax's mains do (variants "-noflag": MEDJAX_CPU_FAST_CONV=0, plain XLA).

Measured 2026-12-01, batch 2 of 32x48x32x1 (divisible by 16, so neither side
pads), 3 classes, Adam, median of 3 steps after the first, 5,747,907 parameters
on both sides; a 2-core AVX2 EPYC VM shared with other jobs (so the
spread is wide; load 2-8): images/s median [min-max] over the rounds of 4 compare runs
(jax 0.10.2, torch 2.13.0 with 2 threads, MONAI 1.6.1), ratio = medjax / MONAI
in the same round:

  variant         images/s (n rounds)      ratio to MONAI, same round
  xla             0.202 [0.049-0.434] (7)  0.59 [0.12-1.87]
  slices          0.557 [0.198-0.826] (7)  1.37 [0.57-2.44]
  MONAI           0.265 [0.163-1.455] (7)  1
  xla-noflag      0.206 (1)                0.91
  slices-noflag   0.230 (1)                1.01

In the least loaded round: MONAI 1.37 s/step, slices 2.42 s, xla 6.5 s. The
3D convolutions of 'xla' suffer most from the other jobs; 'slices' is the
steadiest. Without medjax's flag, 'slices' loses its lead (its 2D weight
gradients go to YNNPACK, see medjax/segmentation/conv3d.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from experiments.bench.unet_cpu import REPO_ROOT, _timed

PEER = os.path.join("experiments", "bench", "peers", "monai_unet3d.py")
NO_FAST_CONV = {"MEDJAX_CPU_FAST_CONV": "0"}  # medjax's CPU conv flag off (raw XLA)
# name -> (medjax arguments, environment); "monai" is the peer. medjax runs add
# the CPU convolution flag of medjax.engine.runtime as medjax's mains do.
VARIANTS = {
    "xla-noflag": (["--conv_impl", "xla"], NO_FAST_CONV),
    "xla": (["--conv_impl", "xla"], {}),
    "slices-noflag": (["--conv_impl", "slices"], NO_FAST_CONV),
    "slices": (["--conv_impl", "slices"], {}),
    "monai": ([], {}),
}


def _parse(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--shape", default="32,48,32", help="patch D,H,W")
  parser.add_argument("--classes", type=int, default=3)
  parser.add_argument("--features", default="32,32,64,128,256")
  parser.add_argument("--norm", default="instance", choices=["instance", "batch"])
  parser.add_argument("--upsample", default="transpose", choices=["transpose", "subpixel"])
  parser.add_argument("--conv_impl", default="xla", choices=["xla", "slices"])
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--compare", action="store_true")
  parser.add_argument("--variants", default="xla-noflag,xla,slices,monai")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--peer_python", default="/work/peers/bin/python")
  return parser.parse_args(argv)


def bench_medjax(args) -> dict:
  """Times the jitted train step; returns the JSON record."""
  from medjax.engine import runtime
  runtime.configure_xla()  # as every medjax main does (MEDJAX_CPU_FAST_CONV=0: off)
  import jax
  import jax.numpy as jnp
  import optax

  from medjax.segmentation.losses import dice_ce
  from medjax.segmentation.unet import UNet

  shape = tuple(int(s) for s in args.shape.split(","))
  model = UNet(args.classes, spatial_dims=3, norm=args.norm, upsample=args.upsample,
               features=tuple(int(f) for f in args.features.split(",")),
               conv_impl=args.conv_impl, dtype=jnp.dtype(args.dtype))
  x = jax.random.normal(jax.random.key(0), (args.batch, *shape, 1))
  y = jax.random.randint(jax.random.key(1), (args.batch, *shape), 0, args.classes)
  variables = jax.jit(lambda x: model.init(jax.random.key(2), x))(x)
  params, stats = variables["params"], variables.get("batch_stats", {})
  tx = optax.adam(1e-3)
  mutable = ["batch_stats"] if stats else False

  def loss_fn(params, stats, x, y):
    out = model.apply({"params": params, **({"batch_stats": stats} if stats else {})}, x,
                      train=True, mutable=mutable)
    logits, updates = out if mutable else (out, {})
    return dice_ce(logits, y), updates.get("batch_stats", stats)

  @jax.jit
  def train_step(params, opt_state, stats, x, y):
    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, stats, loss

  state = [params, tx.init(params), stats]

  def step():
    *state[:], loss = train_step(*state, x, y)
    jax.block_until_ready(loss)

  first, median = _timed(step, args.steps)
  voxels = args.batch * shape[0] * shape[1] * shape[2]
  return {"impl": f"medjax/{args.conv_impl}", "first_s": round(first, 3),
          "step_s": round(median, 4), "voxels_per_s": round(voxels / median),
          "images_per_s": round(args.batch / median, 4),
          "params": sum(p.size for p in jax.tree.leaves(params)),
          "xla_flags": os.environ.get("XLA_FLAGS", "")}


def _command(name: str, args) -> tuple[list[str], dict]:
  shared = ["--batch", str(args.batch), "--shape", args.shape, "--classes",
            str(args.classes), "--steps", str(args.steps)]
  if name == "monai":
    return [args.peer_python, os.path.join(REPO_ROOT, PEER), *shared], dict(os.environ)
  extra, env = VARIANTS[name]
  env = dict(os.environ, **env)
  return [sys.executable, "-m", "experiments.bench.unet3d_cpu", *shared, "--features",
          args.features, "--norm", args.norm, "--upsample", args.upsample, "--dtype",
          args.dtype, *extra], env


def _run(name: str, args) -> dict:
  cmd, env = _command(name, args)
  result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                          cwd=REPO_ROOT)
  lines = [l for l in result.stdout.splitlines() if l.startswith("{")]
  if result.returncode or not lines:
    raise RuntimeError(f"{name} failed ({' '.join(cmd)}):\n{result.stderr[-2000:]}")
  return json.loads(lines[-1])


def _spread(values) -> str:
  return f"{statistics.median(values):.4g} [{min(values):.4g}-{max(values):.4g}]"


def compare(args) -> dict[str, list[dict]]:
  """Runs the variants round by round; prints a table with ratios to MONAI."""
  names = [n.strip() for n in args.variants.split(",") if n.strip()]
  unknown = [n for n in names if n not in VARIANTS]
  if unknown:
    raise SystemExit(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
  runs = {n: [] for n in names}
  for r in range(args.rounds):
    for name in names:
      runs[name].append(_run(name, args))
      print(json.dumps({"round": r, "variant": name, **runs[name][-1]}), flush=True)
  print(f"\nbatch {args.batch} x {args.shape}, {args.rounds} rounds, images/s median [min-max]")
  print(f"{'variant':14s} {'images/s':24s} {'ratio to monai':24s} params")
  for name in names:
    speeds = [r["images_per_s"] for r in runs[name]]
    ratio = ("-" if "monai" not in runs else _spread(
        [a["images_per_s"] / b["images_per_s"] for a, b in zip(runs[name], runs["monai"])]))
    print(f"{name:14s} {_spread(speeds):24s} {ratio:24s} {runs[name][0]['params']}")
  return runs


def main():
  args = _parse()
  if args.compare:
    compare(args)
  else:
    print(json.dumps(bench_medjax(args)))


if __name__ == "__main__":
  main()
