"""`--mode=evaluate`: a trained 2D model's metrics on any labelled folder.

Images of `input_dir` are paired by file stem with label masks in `label_dir`
(and field-of-view masks in `fov_dir`): a mask's stem is the image's, optionally
followed by one of `pairing.MASK_SUFFIXES`; DRIVE's names also pair
(`21_training.tif` with `21_manual1.gif` and `21_training_mask.gif`). Masks are
read as the segmentation data readers read them ({0, 255} binary or class-index
PNG / GIF / TIF). Every file is checked before the model runs; one InputError
names every missing, unreadable or wrongly sized file.

The metrics are the training evaluator's (`metrics.SegmentationMetrics` on the
model's probabilities, only inside the FOV when FOV masks are given, as DRIVE is
scored): Dice / F1, IoU, sensitivity, specificity, accuracy per image and pooled
over all pixels, pixel ROC-AUC, and HD95 when `task.hd95`. Written to
`<output_dir>/metrics.json` and `<output_dir>/per_image.csv`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re

import numpy as np

from medjax.engine import restore
from medjax.segmentation import metrics as metrics_lib
from medjax.segmentation import predict as predict_lib
from medjax.segmentation.data import imageio
from medjax.segmentation.data import pairing
from medjax.segmentation.data.errors import DataError, raise_all

METRICS_FILE, PER_IMAGE_FILE = "metrics.json", "per_image.csv"
_DRIVE_IMAGE = re.compile(r"(\d+)_(training|test)")  # DRIVE image stems: 21_training


def _match(name: str, candidates: dict[str, str], directory: str) -> str:
  """`pairing.match_by_stem`, also trying a DRIVE image's bare id (21_training -> 21)."""
  try:
    return pairing.match_by_stem(name, candidates, directory)
  except DataError as e:
    first = e
  drive = _DRIVE_IMAGE.fullmatch(os.path.splitext(name)[0])
  if drive is not None:
    try:
      return pairing.match_by_stem(drive.group(1), candidates, directory)
    except DataError:
      raise DataError(f"{first}, nor DRIVE's {drive.group(1)!r} + one of them") from None
  raise first


def pair_folder(input_dir: str, label_dir: str, fov_dir: str | None = None):
  """One `pairing.Pair` per image of `input_dir`; a DataError naming every image
  without exactly one label (or FOV) mask."""
  imageio.require_dir(input_dir, "the images to evaluate on (--input_dir)")
  imageio.require_dir(label_dir, f"one label mask per image of {input_dir} (--label_dir)")
  labels = {os.path.splitext(n)[0]: n for n in imageio.list_images(label_dir)}
  fovs = {}
  if fov_dir:
    imageio.require_dir(fov_dir, f"one FOV mask per image of {input_dir} (--fov_dir)")
    fovs = {os.path.splitext(n)[0]: n for n in imageio.list_images(fov_dir)}
  pairs, problems = [], []
  for name in imageio.list_images(input_dir):
    try:
      pairs.append(pairing.Pair(os.path.splitext(name)[0], os.path.join(input_dir, name),
                                _match(name, labels, label_dir),
                                _match(name, fovs, fov_dir) if fov_dir else None))
    except DataError as e:
      problems.append(str(e))
  raise_all(problems, input_dir)
  return pairs


def read_example(pair: pairing.Pair, num_classes: int) -> tuple[dict, list[str]]:
  """{"image", "label", "valid"} of `pair` and one message per bad file (unreadable,
  a size other than its image's, label values the model does not have)."""
  arrays, problems = pairing.read_pair(pair, None, read_image=imageio.read_image)
  if "mask" in arrays:
    arrays["label"] = arrays.pop("mask")
  if "label" in arrays and arrays["label"].max() >= num_classes:
    problems.append(f"mask {pair.mask} has label {int(arrays['label'].max())}; the model "
                    f"has {num_classes} classes (0..{num_classes - 1})")
  return arrays, problems


def check_folder(pairs, num_classes: int) -> None:
  """Reads every file once before the model runs; one DataError naming each bad one."""
  problems = []
  for pair in pairs:
    problems += read_example(pair, num_classes)[1]
  raise_all(problems, os.path.dirname(pairs[0].image) if pairs else "")


def image_row(pair, probs, label, valid, task_config) -> dict:
  """The per-image CSV row: the binary metrics of the foreground class, exact AUC."""
  pred = probs.argmax(-1)[None]
  row = {"id": pair.id, "image": pair.image, "label": pair.mask,
         "valid_pixels": int(np.count_nonzero(valid))}
  for name, values in metrics_lib.binary_scores(pred, label[None], valid[None]).items():
    row[name] = float(values[0])
  row["pixel_auc"] = metrics_lib.pixel_auc(probs[..., 1], label, valid)
  if task_config.hd95:
    row["hd95"] = float(metrics_lib.hd95(pred, label[None], valid[None])[0])
  if task_config.num_classes > 2:
    dice = metrics_lib.per_class_scores(pred, label[None], task_config.num_classes,
                                        valid[None])["dice"][0]
    row.update({f"dice_class{k}": float(d) for k, d in enumerate(dice)})
  return row


def score_folder(pairs, predictor, task_config) -> tuple[dict, list[dict]]:
  """(aggregate metrics as the training evaluator's, per-image rows)."""
  acc = metrics_lib.SegmentationMetrics(task_config.num_classes, from_logits=False,
                                        compute_hd95=task_config.hd95)
  rows = []
  for pair in pairs:
    arrays, _ = read_example(pair, task_config.num_classes)
    label = arrays["label"]
    valid = arrays.get("valid", np.ones(label.shape, np.uint8)) > 0
    probs = predictor(arrays["image"], arrays.get("valid"), pair.image)
    acc.update(probs[None], label[None], valid[None])
    rows.append(image_row(pair, probs, label, valid, task_config))
  return acc.aggregate(), rows


def _finite_or_none(value):
  return value if not isinstance(value, float) or math.isfinite(value) else None


def write_results(output_dir: str, metrics: dict, rows: list[dict], info: dict) -> dict:
  """`metrics.json` (non-finite values as null) and `per_image.csv`; returns the paths."""
  os.makedirs(output_dir, exist_ok=True)
  paths = {"metrics": os.path.join(output_dir, METRICS_FILE),
           "per_image": os.path.join(output_dir, PER_IMAGE_FILE)}
  with open(paths["metrics"], "w", encoding="utf-8") as f:
    json.dump({"metrics": {k: _finite_or_none(v) for k, v in metrics.items()}, **info}, f,
              indent=1)
  with open(paths["per_image"], "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  return paths


def evaluate_folder(config, workdir: str, task, input_dir: str, label_dir: str,
                    output_dir: str, fov_dir: str | None = None) -> dict:
  """Scores the workdir's best checkpoint on a labelled folder; returns the metrics."""
  pairs = pair_folder(input_dir, label_dir, fov_dir)
  check_folder(pairs, task.config.num_classes)
  _, predict = restore.load_for_prediction(config, workdir, task)
  metrics, rows = score_folder(pairs, predict_lib.Predictor(task, predict, workdir),
                               task.config)
  info = {"workdir": workdir, "input_dir": input_dir, "label_dir": label_dir,
          "fov_dir": fov_dir, "fov_scale": bool(task.config.fov_scale.enabled),
          "tta_flips": bool(task.config.tta_flips), "clahe": bool(task.config.clahe.enabled)}
  write_results(output_dir, metrics, rows, info)
  return metrics
