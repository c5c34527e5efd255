"""medjax's ResUNet against MONAI's UNet: parameter counts and ported-weight outputs.

For each configuration the peer process (PyTorch + MONAI, --peer_python) builds
`monai.networks.nets.UNet` with random weights (PReLU slopes randomised too),
runs it on a random input and saves weights, input and output to .npz; this
process copies the weights into `medjax.segmentation.resunet.ResUNet` (conv
(out, in, *k) -> (*k, in, out); transposed conv (in, out, *k) -> (*k, in, out)
spatially flipped) and compares the logits. Run from the repository root:

  .venv/bin/python experiments/bench/peers/monai_unet_port.py --peer_python=/work/peers/bin/python

Prints one line per configuration and exits 1 if any count or output differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

# (spatial_dims, in, out, channels, strides, num_res_units, input spatial size)
CONFIGS = [
    (2, 1, 2, (4, 8, 16), (2, 2), 2, (32, 32)),
    (2, 3, 3, (4, 8, 16, 32), (2, 2, 2), 0, (16, 24)),
    (2, 1, 2, (4, 8, 16), (2, 3), 2, (12, 24)),
    (3, 1, 3, (4, 8, 16, 32), (2, 2, 1), 1, (8, 12, 16)),
    (3, 2, 2, (4, 8, 16), (2, 2), 3, (8, 8, 8)),
]


def torch_side(index: int, path: str):
  """Peer venv: MONAI UNet -> .npz of weights ('w:<name>'), input x and output y."""
  import torch  # pylint: disable=import-outside-toplevel
  from monai.networks.nets import UNet  # pylint: disable=import-outside-toplevel

  d, cin, cout, channels, strides, r, size = CONFIGS[index]
  torch.manual_seed(index)
  model = UNet(d, cin, cout, channels, strides, num_res_units=r).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith("adn.A.weight"):
        p.uniform_(0.05, 0.5)
    x = torch.randn(2, cin, *size)
    y = model(x)
  arrays = {f"w:{k}": v.numpy() for k, v in model.state_dict().items()}
  np.savez(path, x=x.numpy(), y=y.numpy(),
           count=sum(p.numel() for p in model.parameters()), **arrays)


def _torch_name(path: tuple[str, ...], depth: int, res_units: int) -> str:
  """Flax parameter path -> MONAI state_dict name."""
  top, *inner = path
  kind, _, level = top.partition("_")
  if top == "bottom":
    prefix = "model" + ".1.submodule" * (depth - 1)
  else:
    prefix = "model" + ".1.submodule" * int(level.split("_")[0])
    prefix += ".0" if kind == "down" else ".2"
    if kind == "up":
      prefix += ".1" if top.endswith("_res") else (".0" if res_units else "")
  tail = {"kernel": "weight", "bias": "bias", "negative_slope": "weight"}[inner[-1]]
  parts = []
  for name in inner[:-1]:
    if name.startswith("unit"):
      parts += ["conv", name]
    elif name == "prelu":
      parts += ["adn", "A"]
    else:
      parts.append(name)  # conv, residual
  return ".".join([prefix, *parts, tail])


def _to_flax(name: str, w: np.ndarray, transposed: bool) -> np.ndarray:
  if w.ndim <= 1:
    return w.reshape(()) if name.endswith("adn.A.weight") else w
  spatial = tuple(range(2, w.ndim))
  if transposed:  # (in, out, *k): flip the taps, as a conv of the dilated input
    return np.flip(w, axis=spatial).transpose(*spatial, 0, 1)
  return w.transpose(*spatial, 1, 0)


def check(index: int, peer_python: str) -> bool:
  """Both upsampling forms of ResUNet against one MONAI UNet."""
  from medjax.segmentation import resunet  # pylint: disable=import-outside-toplevel

  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "monai.npz")
    subprocess.run([peer_python, os.path.abspath(__file__), "--torch_side", str(index),
                    "--npz", path], check=True)
    ref = dict(np.load(path))
  return all([_compare(ref, index, upsample) for upsample in resunet.UPSAMPLES])


def _compare(ref, index: int, upsample: str) -> bool:
  import jax  # pylint: disable=import-outside-toplevel
  from flax import traverse_util  # pylint: disable=import-outside-toplevel
  from medjax.segmentation import resunet  # pylint: disable=import-outside-toplevel

  d, _, cout, channels, strides, r, size = CONFIGS[index]
  model = resunet.ResUNet(cout, d, channels, strides, r, upsample=upsample)
  x = np.moveaxis(ref["x"], 1, -1)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)["params"]
  flat = {}
  for key, shape in traverse_util.flatten_dict(shapes).items():
    name = _torch_name(key, len(channels), r)
    transposed = key[0].startswith("up_") and not key[0].endswith("_res") and key[1] == "conv"
    flat[key] = _to_flax(name, ref[f"w:{name}"], transposed).astype(np.float32)
    assert flat[key].shape == shape.shape, (key, name, flat[key].shape, shape.shape)
  params = traverse_util.unflatten_dict(flat)
  count = sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))
  y = np.asarray(model.apply({"params": params}, x))
  err = float(np.max(np.abs(y - np.moveaxis(ref["y"], 1, -1))))
  scale = float(np.max(np.abs(ref["y"])))
  ok = count == int(ref["count"]) and err <= 1e-5 * max(1.0, scale)
  print(json.dumps(dict(upsample=upsample, spatial_dims=d, channels=channels,
                        strides=strides, num_res_units=r, input=size, params_medjax=count,
                        params_monai=int(ref["count"]),
                        max_abs_diff=err, max_abs_logit=scale, ok=ok)))
  return ok


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--peer_python", default="/work/peers/bin/python")
  parser.add_argument("--torch_side", type=int, default=-1, help=argparse.SUPPRESS)
  parser.add_argument("--npz", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.torch_side >= 0:
    torch_side(args.torch_side, args.npz)
    return
  sys.path.insert(0, os.getcwd())
  results = [check(i, args.peer_python) for i in range(len(CONFIGS))]
  sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
  main()
