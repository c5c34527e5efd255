"""Class probabilities for a folder of 2D images, from a trained workdir (best checkpoint)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from medjax.classification import evaluation
from medjax.classification.data import images
from medjax.engine import restore
from medjax.engine.errors import InputError
from medjax.segmentation.data.errors import raise_all


def _thresholds(workdir: str):
  path = os.path.join(workdir, evaluation.THRESHOLDS_FILE)
  if not os.path.isfile(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)["thresholds"]


def predicted_labels(probs: np.ndarray, thresholds, multi_label: bool) -> list[str]:
  """Per image: the class (binary: p(class 1) >= threshold, else argmax), or the
  findings at or above their thresholds joined by "|" (multi-label)."""
  if multi_label:
    t = np.full(probs.shape[1], 0.5) if thresholds is None else np.asarray(thresholds)
    return [np.flatnonzero(p >= t) for p in probs]
  if probs.shape[1] == 2 and thresholds is not None:
    return [int(p[1] >= thresholds[0]) for p in probs]
  return [int(p.argmax()) for p in probs]


def predict_folder(config, workdir: str, task, input_dir: str, output_csv: str) -> int:
  """Writes `output_csv`: file, p_<class> per class and the prediction at the
  validation-chosen threshold(s) (`thresholds.json`), one row per image of `input_dir`.
  Images are read as in training (channels, resized to the training size)."""
  info = task.info
  if info.spatial_dims != 2:
    raise InputError("--mode=predict reads a folder of 2D images; this run was trained on "
                     f"{info.spatial_dims}D data")
  names = images.list_images(input_dir)
  if not names:
    raise InputError(f"--input_dir={input_dir} holds no image files "
                     f"({', '.join(images.IMAGE_SUFFIXES)})")
  arrays, problems = [], []
  for name in names:
    try:
      arrays.append(images.read_image(os.path.join(input_dir, name), info.channels,
                                      info.image_shape[:2]))
    except InputError as e:
      problems.append(str(e))
  raise_all(problems, input_dir)
  _, predict = restore.load_for_prediction(config, workdir, task)
  size = task.config.eval_batch_size
  probs = []
  for start in range(0, len(arrays), size):
    chunk = np.stack(arrays[start:start + size]).astype(np.float32) / 255.0
    padded = np.zeros((size, *chunk.shape[1:]), np.float32)
    padded[:len(chunk)] = chunk  # one compiled batch shape
    probs.append(task.probabilities(predict({"image": padded}))[:len(chunk)])
  probs = np.concatenate(probs)
  labels = predicted_labels(probs, _thresholds(workdir), info.multi_label)
  with open(output_csv, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["file", *[f"p_{c}" for c in info.classes], "prediction"])
    for name, p, label in zip(names, probs, labels):
      shown = "|".join(info.classes[k] for k in label) if info.multi_label \
          else info.classes[label]
      writer.writerow([name, *[f"{x:.6f}" for x in p], shown])
  return len(names)
