"""One 3D U-Net training step in PyTorch/MONAI, the peer of `unet3d_cpu.py`.

MONAI's `BasicUNet` with its default features (32, 32, 64, 128, 256, 32) is,
layer for layer, medjax's `UNet(features=(32, 32, 64, 128, 256))`: two
3^3 conv -> instance norm (affine) -> ReLU per level, 2^3 max pooling, 2^3
stride-2 transposed convolutions (channels halved except at the last level),
concatenated skips and a 1^3 head. Loss MONAI `DiceCELoss` (softmax, no
background in the Dice term, as medjax's `dice_ce`), optimiser Adam(1e-3).

Runs in the peer venv (experiments/bench/peers/requirements.txt), not medjax's:

  /work/peers/bin/python experiments/bench/peers/monai_unet3d.py --batch 2 --shape 32,48,32

Prints one JSON line: median seconds per step, voxels/s, images/s, params.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))
from experiments.bench.unet_cpu import _timed  # noqa: E402  (stdlib-only module)


def _parse():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--shape", default="32,48,32", help="patch D,H,W")
  parser.add_argument("--classes", type=int, default=3)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--device", default="cpu")
  return parser.parse_args()


def main():
  args = _parse()
  import torch
  from monai.losses import DiceCELoss
  from monai.networks.nets import BasicUNet

  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  shape = tuple(int(s) for s in args.shape.split(","))
  model = BasicUNet(spatial_dims=3, in_channels=1, out_channels=args.classes,
                    features=(32, 32, 64, 128, 256, 32), act="relu",
                    norm=("instance", {"affine": True, "eps": 1e-6}), bias=False,
                    upsample="deconv").to(args.device).train()
  loss_fn = DiceCELoss(include_background=False, to_onehot_y=True, softmax=True)
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  x = torch.randn(args.batch, 1, *shape, device=args.device)
  y = torch.randint(0, args.classes, (args.batch, 1, *shape), device=args.device)

  def step():
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    loss.item()  # waits for the device
  first, median = _timed(step, args.steps)
  voxels = args.batch * shape[0] * shape[1] * shape[2]
  print(json.dumps({"impl": "monai", "first_s": round(first, 3), "step_s": round(median, 4),
                    "voxels_per_s": round(voxels / median), "images_per_s":
                    round(args.batch / median, 4), "params": sum(
                        p.numel() for p in model.parameters())}))


if __name__ == "__main__":
  main()
