"""Times one U-Net training step (forward + backward) in JAX and PyTorch.

Compares medjax's U-Net with 'subpixel' and 'transpose' upsampling against the
same network in PyTorch (conv3x3-BN-ReLU x2 per level, max pooling, 2x2
stride-2 transposed convolutions, concatenated skips, 1x1 head).

  python -m experiments.bench.unet_cpu                   # every variant, each in a subprocess
  python -m experiments.bench.unet_cpu --impl subpixel   # one variant in this process
  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution \
      python -m experiments.bench.unet_cpu --impl transpose

Each variant runs in its own process so XLA_FLAGS apply to it alone. Defaults
are a lung-CT-sized step: batch 8 of 256x256x1, features (32, 64, 128, 256).

Measured (seconds per step, median of 3 after the first):

  variant                    Xeon, 2 pinned cores   shared 2-core dev box (load ~10)
                             jax 0.11.2 / torch 2.11  jax 0.10.2 / torch 2.13
  subpixel                         4.78                   20.0
  transpose                       11.22                   38.5
  subpixel  + ynn flag             3.40                   18.5
  transpose + ynn flag             9.66                   34.3
  torch (2 threads)                3.43                   24.4

  On one H100 (--device cuda, median of 20): subpixel 0.008, transpose 0.015,
  torch 0.015.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARIANTS = [("subpixel", ""), ("transpose", ""), ("subpixel", YNN_FLAG),
            ("transpose", YNN_FLAG), ("torch", "")]


def _parse():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--impl", choices=["subpixel", "transpose", "torch", "all"],
                      default="all")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--features", default="32,64,128,256")
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--threads", type=int, default=2, help="PyTorch threads")
  parser.add_argument("--device", default="cpu", help="PyTorch device (cpu, cuda)")
  return parser.parse_args()


def _timed(step, steps):
  """(seconds of the first call, median seconds of `steps` later calls)."""
  start = time.perf_counter()
  step()
  first = time.perf_counter() - start
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  return first, sorted(times)[len(times) // 2]


def bench_jax(args, upsample):
  import jax
  import jax.numpy as jnp
  import optax

  from medjax.segmentation.unet import UNet

  features = tuple(int(f) for f in args.features.split(","))
  model = UNet(2, features=features, upsample=upsample)
  x = jax.random.normal(jax.random.key(0), (args.batch, args.size, args.size, 1))
  y = (x[..., 0] > 0).astype(jnp.int32)
  variables = jax.jit(lambda x: model.init(jax.random.key(1), x))(x)

  def loss_fn(params, batch_stats, x, y):  # data as arguments: no constant folding
    logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, x,
                                  train=True, mutable=["batch_stats"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, updates

  grad_fn = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))

  def step():
    jax.block_until_ready(grad_fn(variables["params"], variables["batch_stats"], x, y))

  return _timed(step, args.steps)


class _TorchUNet:
  """Builds the PyTorch reference network lazily (torch imported on demand)."""

  @staticmethod
  def build(features):
    import torch
    from torch import nn

    def block(cin, cout):
      return nn.Sequential(
          nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
          nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    class UNet(nn.Module):

      def __init__(self):
        super().__init__()
        chans = [1, *features]
        self.down = nn.ModuleList(block(a, b) for a, b in zip(chans, chans[1:]))
        rev = features[::-1]
        self.up = nn.ModuleList(nn.ConvTranspose2d(a, b, 2, stride=2)
                                for a, b in zip(rev, rev[1:]))
        self.dec = nn.ModuleList(block(2 * b, b) for b in rev[1:])
        self.head = nn.Conv2d(features[0], 2, 1)

      def forward(self, x):
        skips = []
        for i, down in enumerate(self.down):
          x = down(x if i == 0 else nn.functional.max_pool2d(x, 2))
          skips.append(x)
        for up, dec, skip in zip(self.up, self.dec, skips[-2::-1]):
          x = dec(torch.cat([skip, up(x)], dim=1))
        return self.head(x)

    return UNet()


def bench_torch(args):
  import torch

  torch.set_num_threads(args.threads)
  features = tuple(int(f) for f in args.features.split(","))
  model = _TorchUNet.build(features).to(args.device).train()
  x = torch.randn(args.batch, 1, args.size, args.size, device=args.device)
  y = (x[:, 0] > 0).long()

  def step():
    model.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    if args.device.startswith("cuda"):
      torch.cuda.synchronize()

  return _timed(step, args.steps)


def _run_all(args):
  print(f"batch {args.batch}, {args.size}x{args.size}x1, features ({args.features}), "
        f"median of {args.steps} steps after the first")
  for impl, flags in VARIANTS:
    if flags and args.device != "cpu":
      continue  # XLA CPU flags mean nothing on an accelerator
    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + flags).strip())
    cmd = [sys.executable, "-m", "experiments.bench.unet_cpu", "--impl", impl,
           "--batch", str(args.batch), "--size", str(args.size), "--features", args.features,
           "--steps", str(args.steps), "--threads", str(args.threads),
           "--device", args.device]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                            cwd=REPO_ROOT)
    line = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else (
        "failed: " + result.stderr.strip()[-300:])
    print(f"{impl:10s} {flags or '(default XLA flags)':70s} {line}", flush=True)


def main():
  args = _parse()
  if args.impl == "all":
    _run_all(args)
    return
  if args.impl == "torch":
    first, step = bench_torch(args)
  else:
    first, step = bench_jax(args, args.impl)
  print(f"first call {first:7.2f} s  step {step:7.3f} s")


if __name__ == "__main__":
  main()
