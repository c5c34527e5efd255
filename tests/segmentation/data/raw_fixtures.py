"""Writers of tiny raw-data folders in the layouts the builders read."""

from __future__ import annotations

import os
import pathlib

import numpy as np
from PIL import Image
import tifffile


def write_tif(path, array, lzw: bool = False) -> np.ndarray:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if lzw:  # as the real DRIVE images: LZW, which tifffile cannot decode without imagecodecs
    Image.fromarray(array).save(path, compression="tiff_lzw")
  else:
    tifffile.imwrite(path, array)
  return array


def write_pil(path, array) -> np.ndarray:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path)
  return array


def binary(rng, shape, scale=255) -> np.ndarray:
  return (rng.random(shape) < 0.3).astype(np.uint8) * scale


def write_lung(root, splits=(("train", 3), ("val", 2)), size=(16, 16), seed=0) -> dict:
  """`<root>/<split>/images_256/*.tif` int16 + `masks_256/*.tif` {0, 1}.

  Returns {id: (split, image, mask)}.
  """
  rng = np.random.default_rng(seed)
  written = {}
  for split, count in splits:
    for i in range(count):
      name = f"ID_{split}_{i:02d}"
      image = rng.integers(-2000, 2000, size).astype(np.int16)
      mask = binary(rng, size, 1)
      write_tif(os.path.join(root, split, "images_256", name + ".tif"), image)
      write_tif(os.path.join(root, split, "masks_256", name + ".tif"), mask)
      written[name] = (split, image, mask)
  return written


def write_drive(root, train_ids=(21, 22, 37), test_ids=(1,), size=(12, 10), seed=0) -> dict:
  """DRIVE layout with LZW RGB TIFFs and {0, 255} GIFs; returns {id: (image, vessels, fov)}."""
  rng = np.random.default_rng(seed)
  written = {}
  for folder, kind, ids in (("training", "training", train_ids), ("test", "test", test_ids)):
    for i in ids:
      ident = f"{i:02d}"
      image = rng.integers(0, 256, size + (3,)).astype(np.uint8)
      vessels, fov = binary(rng, size), binary(rng, size)
      write_tif(os.path.join(root, folder, "images", f"{ident}_{kind}.tif"), image, lzw=True)
      write_pil(os.path.join(root, folder, "1st_manual", f"{ident}_manual1.gif"), vessels)
      write_pil(os.path.join(root, folder, "mask", f"{ident}_{kind}_mask.gif"), fov)
      written[ident] = (image, vessels // 255, fov // 255)
  return written


def write_folder(root, n=3, size=(20, 24), seed=0) -> None:
  """`<root>/{train,val}/images/*.png` and `masks/*_mask.png` with matching stems."""
  rng = np.random.default_rng(seed)
  for split in ("train", "val"):
    for i in range(n):
      write_pil(os.path.join(root, split, "images", f"case{i}.png"),
                rng.integers(0, 256, size + (3,)).astype(np.uint8))
      write_pil(os.path.join(root, split, "masks", f"case{i}_mask.png"), binary(rng, size))


def read_back(path) -> np.ndarray:
  """An independent read (plain PIL) to compare the builders' output against."""
  with Image.open(path) as im:
    return np.array(im)


def write_bad_folder(raw, seed=0) -> dict:
  """An image folder with two good pairs and four bad files, one of each problem.

  Returns {image stem: words of the expected problem}.
  """
  raw, rng = pathlib.Path(raw), np.random.default_rng(seed)
  for n in ("good1", "good2"):
    write_pil(str(raw / "images" / f"{n}.png"), rng.integers(0, 256, (6, 5, 3), np.uint8))
    write_pil(str(raw / "masks" / f"{n}.png"), binary(rng, (6, 5)))
  (raw / "images" / "broken.png").write_bytes(b"not a png")  # unreadable
  write_pil(str(raw / "masks" / "broken.png"), binary(rng, (6, 5)))
  write_pil(str(raw / "images" / "small.png"), rng.integers(0, 256, (6, 5, 3), np.uint8))
  write_pil(str(raw / "masks" / "small.png"), binary(rng, (3, 3)))  # size mismatch
  write_pil(str(raw / "images" / "rgb.png"), rng.integers(0, 256, (6, 5, 3), np.uint8))
  write_pil(str(raw / "masks" / "rgb.png"),  # wrong shape: a colour mask
            rng.integers(0, 256, (6, 5, 3), np.uint8))
  write_pil(str(raw / "images" / "alone.png"), rng.integers(0, 256, (6, 5, 3), np.uint8))
  return {"broken": "cannot read image", "small": "has size (3, 3)",
          "rgb": "has colour channels", "alone": "no file in"}
