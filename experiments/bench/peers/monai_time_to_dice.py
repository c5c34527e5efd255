"""MONAI `UNet` trained by PyTorch's own loop: the peer of experiments/bench/time_to_dice.py.

Reads the arrays and settings that time_to_dice.py exported (`--data`: the
preprocessed train / val images, labels and valid masks, and settings.json with
the preset's features, crops, augmentation, loss, optimiser and schedule) and
trains `monai.networks.nets.UNet(channels=features, strides=2 per level,
num_res_units=2)` (instance norm, PReLU: MONAI's defaults) with:

* the same batches: per-epoch shuffles, then random crop, flips, quarter turns,
  rotation (bilinear image, nearest label / valid, zeros outside -> not valid)
  and intensity scale / shift, as medjax's `segmentation.transforms`;
* the same loss: MONAI DiceCELoss's formula (softmax, no background in the Dice
  term, per-image Dice, smooth 1e-5) with the valid mask applied, which
  DiceCELoss itself does not take;
* the same optimiser: torch AdamW (or Adam / SGD) with medjax's linear warmup +
  cosine schedule and global-norm clipping.

Every --eval_every steps the validation split is predicted (whole images, or
`monai.inferers.sliding_window_inference` with the preset's roi, Gaussian
blending) and scored as medjax's metrics (`dice`: mean over images of the hard
foreground Dice inside the valid mask, NaN for 0/0 left out; `pooled_f1`: pooled
over the split). Writes <out>/time_to_dice.json. Runs in the peer venv:

  /work/peers/bin/python experiments/bench/peers/monai_time_to_dice.py --data=DIR --out=DIR
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from monai.networks.nets import UNet


def _parse():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", required=True)
  parser.add_argument("--out", required=True)
  parser.add_argument("--eval_every", type=int, default=50)
  parser.add_argument("--max_seconds", type=float, default=3600.0)
  parser.add_argument("--stop_at", type=float, default=1.0)
  parser.add_argument("--metric", default="val/dice")
  parser.add_argument("--threads", type=int, default=2)
  return parser.parse_args()


def _load(path, split):
  image = np.load(os.path.join(path, f"{split}_image.npy")).astype(np.float32)
  label = np.load(os.path.join(path, f"{split}_label.npy")).astype(np.int64)
  valid = np.load(os.path.join(path, f"{split}_valid.npy")).astype(np.float32)
  return torch.from_numpy(image).permute(0, 3, 1, 2).contiguous(), \
      torch.from_numpy(label), torch.from_numpy(valid)


def schedule(opt, total_steps):
  """medjax.engine.optim.make_schedule as a multiplier of the learning rate."""
  warmup = opt["warmup_steps"]

  def factor(step):
    if warmup and step < warmup:
      return step / warmup
    if opt["schedule"] == "constant":
      return 1.0
    progress = min((step - warmup) / max(total_steps - warmup, 1), 1.0)
    return 0.5 * (1 + math.cos(math.pi * progress))
  return factor


def make_optimizer(params, opt):
  if opt["name"] == "adamw":
    return torch.optim.AdamW(params, lr=opt["learning_rate"], weight_decay=opt["weight_decay"])
  if opt["name"] == "adam":
    return torch.optim.Adam(params, lr=opt["learning_rate"])
  return torch.optim.SGD(params, lr=opt["learning_rate"], momentum=opt["momentum"])


def augment(image, label, valid, settings, gen):
  """medjax's 2D training transforms, per example, in the same order."""
  a, size = settings["augment"], settings["patch_size"]
  n = image.shape[0]
  if any(size):
    h, w = size
    out = [], [], []
    for b in range(n):
      y = int(torch.randint(0, image.shape[2] - h + 1, (1,), generator=gen))
      x = int(torch.randint(0, image.shape[3] - w + 1, (1,), generator=gen))
      for dst, src in zip(out, (image[b, :, y:y + h, x:x + w], label[b, y:y + h, x:x + w],
                                valid[b, y:y + h, x:x + w])):
        dst.append(src)
    image, label, valid = (torch.stack(t) for t in out)
  image, label, valid = image.clone(), label.clone(), valid.clone()
  for b in range(n):
    dims = [d for d in (0, 1) if a["flip"] and torch.rand(1, generator=gen) < 0.5]
    k = int(torch.randint(0, 4, (1,), generator=gen)) if a["rot90"] else 0
    if dims:
      image[b], label[b], valid[b] = (image[b].flip([d + 1 for d in dims]),
                                      label[b].flip(dims), valid[b].flip(dims))
    if k:
      image[b], label[b], valid[b] = (torch.rot90(image[b], k, (1, 2)),
                                      torch.rot90(label[b], k, (0, 1)),
                                      torch.rot90(valid[b], k, (0, 1)))
  if a["rotate_degrees"]:
    image, label, valid = _rotate(image, label, valid, a["rotate_degrees"], gen)
  if a["intensity_scale"] or a["intensity_shift"]:
    s = 1 + a["intensity_scale"] * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
    t = a["intensity_shift"] * (2 * torch.rand(n, 1, 1, 1, generator=gen) - 1)
    image = image * s + t
  return image, label, valid


def _rotate(image, label, valid, max_degrees, gen):
  n = image.shape[0]
  angle = torch.deg2rad(max_degrees * (2 * torch.rand(n, generator=gen) - 1))
  cos, sin = torch.cos(angle), torch.sin(angle)
  zeros = torch.zeros(n)
  theta = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
  grid = F.affine_grid(theta, list(image.shape), align_corners=True)
  image = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
  targets = torch.stack([label.float(), valid], 1)
  targets = F.grid_sample(targets, grid, mode="nearest", padding_mode="zeros",
                          align_corners=True)
  inside = F.grid_sample(torch.ones_like(targets[:, :1]), grid, mode="nearest",
                         padding_mode="zeros", align_corners=True)[:, 0]
  return image, targets[:, 0].long(), targets[:, 1] * inside


def loss_fn(logits, label, valid, settings):
  """medjax's dice_ce / dice / ce: masked CE + per-image soft Dice without background."""
  k = logits.shape[1]
  log_p = F.log_softmax(logits, 1)
  nll = -log_p.gather(1, label.clamp(0, k - 1)[:, None])[:, 0]
  ce = (valid * nll).sum() / valid.sum().clamp_min(1e-12)
  probs, onehot = log_p.exp(), F.one_hot(label.clamp(0, k - 1), k).permute(0, 3, 1, 2)
  w = valid[:, None]
  inter = (w * probs * onehot).sum((2, 3))
  total = (w * (probs + onehot)).sum((2, 3))
  dice = 1 - ((2 * inter + 1e-5) / (total + 1e-5))[:, 1:].mean(1).mean()
  return {"ce": ce, "dice": dice, "dice_ce": settings["dice_weight"] * dice + ce}[
      settings["loss"]]


def evaluate(model, val, settings):
  """{'dice': mean per-image Dice, 'pooled_f1': pooled} of class 1 inside `valid`."""
  image, label, valid = val
  model.eval()
  roi, per_image, counts = settings["roi"], [], np.zeros(3)
  with torch.no_grad():
    for start in range(0, len(image), settings["eval_batch_size"]):
      x = image[start:start + settings["eval_batch_size"]]
      if any(roi):
        logits = sliding_window_inference(x, tuple(roi), settings["sw_batch_size"], model,
                                          overlap=settings["overlap"], mode="gaussian")
      else:
        logits = model(x)
      pred = logits.argmax(1).numpy() == 1
      y = label[start:start + len(x)].numpy() == 1
      v = valid[start:start + len(x)].numpy() > 0
      tp, fp, fn = ((a & b & v).sum((1, 2)) for a, b in ((pred, y), (pred, ~y), (~pred, y)))
      den = 2 * tp + fp + fn
      per_image += [2 * t / d if d else np.nan for t, d in zip(tp, den)]
      counts += [tp.sum(), fp.sum(), fn.sum()]
  model.train()
  tp, fp, fn = counts
  return {"dice": float(np.nanmean(per_image)), "pooled_f1": float(2 * tp / (2 * tp + fp + fn))}


def main():
  args = _parse()
  torch.set_num_threads(args.threads)
  with open(os.path.join(args.data, "settings.json"), encoding="utf-8") as f:
    settings = json.load(f)
  torch.manual_seed(settings["seed"])
  gen = torch.Generator().manual_seed(settings["seed"])
  train, val = _load(args.data, "train"), _load(args.data, "val")
  features = settings["features"]
  model = UNet(2, train[0].shape[1], settings["num_classes"], features,
               (2,) * (len(features) - 1), num_res_units=2).train()
  opt_cfg, total = settings["optimizer"], settings["total_steps"]
  optimizer = make_optimizer(model.parameters(), opt_cfg)
  lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(opt_cfg, total))
  rng = np.random.default_rng(settings["seed"])
  os.makedirs(args.out, exist_ok=True)
  metric = args.metric.split("/", 1)[1]
  rows, order, eval_seconds, bs = [], np.zeros(0, int), 0.0, settings["batch_size"]
  t0 = time.perf_counter()
  for step in range(1, total + 1):
    if len(order) < bs:
      order = np.concatenate([order, rng.permutation(len(train[0]))])
    idx, order = torch.from_numpy(order[:bs]), order[bs:]
    x, y, v = augment(*(t[idx] for t in train), settings, gen)
    loss = loss_fn(model(x), y, v, settings)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if opt_cfg["grad_clip_norm"]:
      torch.nn.utils.clip_grad_norm_(model.parameters(), opt_cfg["grad_clip_norm"])
    optimizer.step()
    lr_schedule.step()
    if step % args.eval_every and step != total:
      continue
    started = time.perf_counter()
    value = evaluate(model, val, settings)[metric]
    ended = time.perf_counter()
    rows.append(dict(step=step, train_seconds=started - t0 - eval_seconds, value=value,
                     eval_seconds=ended - started, loss=loss.item()))
    eval_seconds += ended - started
    print(json.dumps(rows[-1]), flush=True)
    with open(os.path.join(args.out, "time_to_dice.json"), "w", encoding="utf-8") as f:
      json.dump({"metric": args.metric, "rows": rows,
                 "params": sum(p.numel() for p in model.parameters())}, f, indent=1)
    if value >= args.stop_at or rows[-1]["train_seconds"] >= args.max_seconds:
      break


if __name__ == "__main__":
  main()
