"""One entry point: prepare a segmentation dataset once, then read it by random access."""

from __future__ import annotations

import os
import re

from medjax.engine import datasets
from medjax.segmentation.data import builders
from medjax.segmentation.data.errors import DataError

BUILDERS = {
    "ct_phantom": builders.CtPhantom,
    "lung_ct_2d": builders.LungCt2d,
    "drive": builders.Drive,
    "image_folder": builders.SegImageFolder,
}
VOLUME_BUILDERS = ("msd", "volume_phantom")  # medjax.segmentation.volumes.builder


def _builder_class(name: str):
  if name in VOLUME_BUILDERS:  # imported here: the volume modules import this package
    from medjax.segmentation.volumes import builder  # pylint: disable=import-outside-toplevel
    return {"msd": builder.MsdVolumes, "volume_phantom": builder.VolumePhantom}[name]
  if name not in BUILDERS:
    raise DataError(f"unknown segmentation dataset {name!r}; known: "
                    f"{sorted(BUILDERS) + list(VOLUME_BUILDERS)}")
  return BUILDERS[name]


def make_builder(name: str, data_dir, raw_dir=None, **builder_kwargs):
  """The TFDS builder `name` (see BUILDERS); raw builders need `raw_dir`."""
  builder_class = _builder_class(name)
  if raw_dir is not None:
    builder_kwargs["raw_dir"] = os.fspath(raw_dir)
  return builder_class(data_dir=os.fspath(data_dir), **builder_kwargs)


def load_source(name: str, split: str, data_dir, raw_dir=None, **builder_kwargs):
  """Prepares dataset `name` under `data_dir` if needed; returns `split` as a data source.

  The source supports `len()` and `source[i]`, giving numpy examples
  `{"image": (H, W, C), "mask": (H, W) uint8, "valid": (H, W) uint8, "id": bytes}`.
  `split` may carry a TFDS slice, e.g. "train[:8]". `builder_kwargs` go to the
  builder, e.g. `num_train=16, size=64` for "ct_phantom".
  """
  builder = datasets.prepare_once(name, make_builder(name, data_dir, raw_dir, **builder_kwargs))
  base = re.split(r"[\[(]", split, maxsplit=1)[0]
  if base not in builder.info.splits:
    raise DataError(f"{name} at {builder.data_dir} has no split {base!r}; it has "
                    f"{sorted(builder.info.splits)}")
  return builder.as_data_source(split)
