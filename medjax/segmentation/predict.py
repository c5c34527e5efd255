"""Predicted masks (and probability maps) for a folder of images, from a trained workdir.

Probability maps (`probabilities`): "png16" writes the foreground probability p
as a 16-bit grey PNG with value round(p * 65535), `<stem>_prob.png` for two
classes and `<stem>_prob_class{k}.png` per foreground class k >= 1 otherwise;
"npy" writes float32 `<stem>_prob.npy`, (H, W) for two classes, else (H, W, K)
with every class; "none" writes masks only.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from medjax.engine import restore
from medjax.engine.errors import InputError
from medjax.segmentation import fov as fov_lib
from medjax.segmentation.data import imageio

PROBABILITY_FORMATS = ("none", "png16", "npy")
PNG16_MAX = 65535


def _as_example(image: np.ndarray) -> dict:
  image = image if image.ndim == 3 else image[..., None]
  shape = image.shape[:2]
  return {"image": image, "mask": np.zeros(shape, np.uint8), "valid": np.ones(shape, np.uint8)}


def _softmax(logits):
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


class Predictor:
  """Per-image class probabilities at the image's own size: the task's preprocessing
  and evaluation-time prediction, with `task.fov_scale` resampling around them."""

  def __init__(self, task, predict_fn, workdir: str):
    self.task, self.predict_fn = task, predict_fn
    scale = task.config.get("fov_scale")
    self.scale = scale if scale is not None and scale.enabled else None
    self.target = fov_lib.target_diameter(scale, workdir) if self.scale else None

  def __call__(self, image: np.ndarray, fov_mask: np.ndarray | None = None,
               path: str = "") -> np.ndarray:
    """(H, W, K) float32 probabilities for one raw image (H, W[, C])."""
    size = image.shape[:2]
    if self.scale is not None:
      diameter = fov_lib.diameter_of(image, fov_mask, self.scale.threshold)
      if diameter == 0:
        raise InputError(f"no field of view found in {path or 'an image'} (fov_scale): "
                         "give a FOV mask or set --config.task.fov_scale.enabled=False")
      image = fov_lib.resize(image, fov_lib.scaled_shape(size, diameter, self.target))
    example = self.task.preprocess(_as_example(image))
    logits = self.task.predict_images(self.predict_fn, example["image"][None])
    probs = _softmax(np.asarray(logits, np.float32)[0])
    return fov_lib.resize(probs, size).astype(np.float32)


def write_probabilities(probs: np.ndarray, stem: str, output_dir: str, fmt: str) -> list[str]:
  """Writes `probs` (H, W, K) as `fmt` (see the module doc); returns the paths."""
  if fmt == "none":
    return []
  if fmt == "npy":
    path = os.path.join(output_dir, stem + "_prob.npy")
    np.save(path, (probs[..., 1] if probs.shape[-1] == 2 else probs).astype(np.float32))
    return [path]
  classes = [1] if probs.shape[-1] == 2 else range(1, probs.shape[-1])
  paths = []
  for k in classes:
    name = stem + ("_prob.png" if probs.shape[-1] == 2 else f"_prob_class{k}.png")
    value = np.round(np.clip(probs[..., k], 0.0, 1.0) * PNG16_MAX).astype(np.uint16)
    paths.append(os.path.join(output_dir, name))
    Image.fromarray(value).save(paths[-1])
  return paths


def read_png16(path: str) -> np.ndarray:
  """A probability PNG written by `write_probabilities`, as float64 probabilities."""
  with Image.open(path) as im:
    return np.asarray(im, np.float64) / PNG16_MAX


def check_format(fmt: str) -> str:
  if fmt not in PROBABILITY_FORMATS:
    raise InputError(f"--probabilities={fmt}: unknown (known: {', '.join(PROBABILITY_FORMATS)})")
  return fmt


def write_mask(probs: np.ndarray, stem: str, output_dir: str) -> str:
  """`<stem>.png`: the argmax labels (binary: 0/255)."""
  labels = probs.argmax(-1).astype(np.uint8)
  if probs.shape[-1] == 2:
    labels = labels * 255
  path = os.path.join(output_dir, stem + ".png")
  Image.fromarray(labels).save(path)
  return path


def predict_folder(config, workdir: str, task, input_dir: str, output_dir: str,
                   probabilities: str = "none") -> list[str]:
  """Writes `<stem>.png` label masks (binary: 0/255) for every image in `input_dir`,
  and probability maps as `probabilities` says; returns the mask paths.

  Images go through the task's preprocessing and its evaluation-time prediction
  (sliding window, flips, FOV scale when configured), one at a time, so sizes may differ.
  """
  check_format(probabilities)
  names = imageio.list_images(imageio.require_dir(input_dir, "images to segment"))
  _, predict = restore.load_for_prediction(config, workdir, task)
  predictor = Predictor(task, predict, workdir)
  os.makedirs(output_dir, exist_ok=True)
  written = []
  for name in names:
    path = os.path.join(input_dir, name)
    probs = predictor(imageio.read_image(path), path=path)
    stem = os.path.splitext(name)[0]
    written.append(write_mask(probs, stem, output_dir))
    write_probabilities(probs, stem, output_dir, probabilities)
  return written
