"""Tiny raw classification data sets written to a test's folder."""

from __future__ import annotations

import csv
import os

import numpy as np
from PIL import Image

# Kermany-style names: two views of person1 and of IM-0001, one of the others.
KERMANY = {"NORMAL": ("IM-0001-0001.jpeg", "IM-0001-0002.jpeg", "IM-0002-0001.jpeg",
                      "NORMAL2-IM-0003-0001.jpeg"),
           "PNEUMONIA": ("person1_bacteria_1.jpeg", "person1_virus_2.jpeg",
                         "person2_bacteria_3.jpeg", "person3_virus_4.jpeg")}


def grey(rng, size=(12, 10)) -> np.ndarray:
  return rng.integers(0, 256, size, dtype=np.uint8)


def write_image_folder(root, layout=None, size=(12, 10), seed=0, fmt=None) -> dict:
  """`root/<split>/<CLASS>/<name>` images; returns {relative path: (H, W) uint8 written}
  (PNG, lossless, whatever the suffix says unless `fmt` is given)."""
  layout = layout or {"train": KERMANY}
  rng = np.random.default_rng(seed)
  written = {}
  for split, classes in layout.items():
    for cls, names in classes.items():
      os.makedirs(os.path.join(root, split, cls), exist_ok=True)
      for name in names:
        image = grey(rng, size)
        Image.fromarray(image).save(os.path.join(root, split, cls, name), format=fmt or "PNG")
        written[f"{split}/{cls}/{name}"] = image
  return written


def write_npz(path, spatial=(4, 5), counts=(("train", 6), ("val", 3)), num_classes=2,
              num_findings=0, seed=0, **extra) -> dict:
  """A MedMNIST-style .npz; returns the arrays written."""
  rng = np.random.default_rng(seed)
  arrays = {}
  for split, n in counts:
    arrays[f"{split}_images"] = rng.integers(0, 256, (n, *spatial), dtype=np.uint8)
    if num_findings:
      arrays[f"{split}_labels"] = rng.integers(0, 2, (n, num_findings)).astype(np.uint8)
    else:
      arrays[f"{split}_labels"] = (np.arange(n) % num_classes)[:, None].astype(np.uint8)
  arrays.update(extra)
  np.savez_compressed(path, **arrays)
  return arrays


def write_csv(root, rows, header=("Path", "Atelectasis", "Edema"), size=(8, 8), seed=0,
              name="labels.csv"):
  """`root/<name>` with `rows` (path, *cells) and a PNG for each path under root."""
  rng = np.random.default_rng(seed)
  for row in rows:
    path = os.path.join(root, row[0])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
      Image.fromarray(grey(rng, size)).save(path, format="PNG")
  csv_path = os.path.join(root, name)
  with open(csv_path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)
  return csv_path


def write_chexpert_csv(path, n=10, columns=("Atelectasis", "Cardiomegaly", "Consolidation",
                                             "Edema", "Pleural Effusion")) -> str:
  """A CheXpert-style CSV at `path` (its images beside it): n patients, one view each,
  cells cycling through 1, 0, -1 and blank."""
  cells = ("1", "0", "-1", "", "0")
  rows = [(f"train/patient{i:05d}/study1/view1_frontal.png",
           *[cells[(i + k) % len(cells)] for k in range(len(columns))]) for i in range(n)]
  return write_csv(os.path.dirname(os.fspath(path)), rows, header=("Path", *columns),
                   size=(20, 20), name=os.path.basename(os.fspath(path)))


def write_flat_images(directory, n=3, size=(20, 20), seed=0) -> list[str]:
  """`n` grey PNGs directly in `directory` (e.g. for --mode=predict)."""
  os.makedirs(directory, exist_ok=True)
  rng = np.random.default_rng(seed)
  names = [f"xray_{i}.png" for i in range(n)]
  for name in names:
    Image.fromarray(grey(rng, size)).save(os.path.join(directory, name))
  return names
