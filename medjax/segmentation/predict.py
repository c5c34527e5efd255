"""Predicted masks for a folder of images, from a trained workdir."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from medjax.engine import restore
from medjax.segmentation.data import imageio


def _as_example(image: np.ndarray) -> dict:
  image = image if image.ndim == 3 else image[..., None]
  shape = image.shape[:2]
  return {"image": image, "mask": np.zeros(shape, np.uint8), "valid": np.ones(shape, np.uint8)}


def predict_folder(config, workdir: str, task, input_dir: str, output_dir: str) -> list[str]:
  """Writes `<stem>.png` label masks (binary: 0/255) for every image in `input_dir`.

  Images go through the task's preprocessing and its evaluation-time prediction
  (sliding window when configured), one at a time, so sizes may differ.
  """
  names = imageio.list_images(imageio.require_dir(input_dir, "images to segment"))
  paths = [os.path.join(input_dir, name) for name in names]
  _, predict = restore.load_for_prediction(config, workdir, task)
  os.makedirs(output_dir, exist_ok=True)
  written = []
  for path in paths:
    example = task.preprocess(_as_example(imageio.read_image(path)))
    images = example["image"][None]
    logits = task.predict_images(predict, images)
    labels = np.asarray(logits)[0].argmax(-1).astype(np.uint8)
    if task.config.num_classes == 2:
      labels = labels * 255
    out = os.path.join(output_dir, os.path.splitext(os.path.basename(path))[0] + ".png")
    Image.fromarray(labels).save(out)
    written.append(out)
  return written
