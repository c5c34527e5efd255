"""Whole-volume prediction of NIfTI files or DICOM series, written back as NIfTI on
each input's own grid.

Each input goes through the preprocessing the model was trained with (the
builder's geometry and intensity options; CT statistics are read from the
prepared training set's metadata), is predicted by sliding windows, and the
labels are mapped back (`geometry.inverse`) onto the input's original grid and
written with its affine and header: same shape, same affine as the input.
"""

from __future__ import annotations

import os

import numpy as np

from medjax.engine import restore
from medjax.segmentation.data.errors import DataError
from medjax.segmentation.volumes import dicom, geometry, intensity, io

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def case_name(path: str) -> str:
  name = os.path.basename(path)
  for suffix in NIFTI_SUFFIXES:
    if name.endswith(suffix):
      return name[:-len(suffix)]
  return name


def list_volumes(input_dir: str) -> list[str]:
  """The NIfTI files and the sub-folders (one DICOM series each) of `input_dir`."""
  names = sorted(n for n in os.listdir(input_dir) if not n.startswith("."))
  paths = [os.path.join(input_dir, n) for n in names
           if n.endswith(NIFTI_SUFFIXES) or os.path.isdir(os.path.join(input_dir, n))]
  if not paths:
    raise DataError(f"no .nii / .nii.gz files or DICOM series folders in {input_dir}")
  return paths


def read_volume(path: str):
  return dicom.read_series(path) if os.path.isdir(path) else io.read_nifti(path)


def preprocess(task_config, volume, stats=None):
  """(preprocessed image (x, y, z, C), GridRecord) as the builder prepares a case."""
  v = task_config.volume
  target = tuple(v.target_spacing) if any(v.target_spacing) else None  # None: keep
  image, _, record = geometry.forward(volume, None, target, crop=v.crop)
  return intensity.normalise(image, v.normalisation, stats), record


def predict_file(task, predict_fn, path: str, stats=None):
  """(labels on the input's original grid (X, Y, Z) uint8, the input Volume)."""
  volume = read_volume(path)
  channels = task.in_channels()
  if volume.array.shape[-1] != channels:
    raise DataError(f"{path} has {volume.array.shape[-1]} channels; the model takes "
                    f"{channels}")
  image, record = preprocess(task.config, volume, stats)
  probs = task.predict_volume(predict_fn, image)
  labels = probs.argmax(-1).astype(np.uint8)
  return geometry.inverse(labels, record, order=0).astype(np.uint8), volume


def predict_folder(config, workdir: str, task, input_dir: str, output_dir: str) -> list[str]:
  """Writes `<output_dir>/<case>.nii.gz` labels for every NIfTI file and DICOM series
  folder of `input_dir` (for a series: the series' grid and a fresh NIfTI header)."""
  paths = list_volumes(input_dir)
  stats = task.normalisation_stats()
  _, predict = restore.load_for_prediction(config, workdir, task)
  os.makedirs(output_dir, exist_ok=True)
  written = []
  for path in paths:
    labels, volume = predict_file(task, predict, path, stats)
    out = os.path.join(output_dir, case_name(path) + ".nii.gz")
    io.write_nifti(out, labels, volume)
    written.append(out)
  return written
