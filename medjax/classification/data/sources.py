"""One entry point: prepare a classification dataset once, then read it by random access."""

from __future__ import annotations

import os
import re
from typing import Any, NamedTuple

import tensorflow_datasets as tfds

from medjax.classification.data import builders
from medjax.engine import datasets
from medjax.segmentation.data.errors import DataError

BUILDERS = {
    "shapes": builders.Shapes,
    "image_folder": builders.ImageFolder,
    "medmnist": builders.MedMnist,
    "csv": builders.CsvImages,
}


class DataInfo(NamedTuple):
  """What the task needs to know of a prepared dataset (from its metadata.json)."""
  classes: tuple[str, ...]
  multi_label: bool
  spatial_dims: int
  channels: int
  image_shape: tuple[int, ...]  # (*S, C)
  label_counts: dict[str, Any]  # split -> counts (see builders._counts)
  splits: tuple[str, ...]


def make_builder(name: str, data_dir, raw_dir=None, **builder_kwargs):
  """The TFDS builder `name` (see BUILDERS); raw builders need `raw_dir`."""
  if name not in BUILDERS:
    raise DataError(f"config.task.dataset: unknown {name!r} (known: {sorted(BUILDERS)})")
  if raw_dir is not None:
    builder_kwargs["raw_dir"] = os.fspath(raw_dir)
  try:
    return BUILDERS[name](data_dir=os.fspath(data_dir), **builder_kwargs)
  except TypeError as e:  # an option the builder does not take
    raise DataError(f"config.task.builder for dataset {name!r}: {e}") from e


def prepared(name: str, data_dir, raw_dir=None, **builder_kwargs):
  """The builder of `name`, prepared under `data_dir` on the first call (logged)."""
  return datasets.prepare_once(name, make_builder(name, data_dir, raw_dir, **builder_kwargs))


def info_of(builder) -> DataInfo:
  c, metadata = builder.builder_config, builder.info.metadata
  return DataInfo(tuple(metadata["classes"]), bool(metadata["multi_label"]), c.spatial_dims,
                  c.channels, tuple(metadata["image_shape"]), dict(metadata["label_counts"]),
                  tuple(sorted(builder.info.splits)))


def labels_of(builder, split: str) -> list[int]:
  """The class index of every example of `split`, in source order (images not decoded)."""
  source = builder.as_data_source(split, decoders={"image": tfds.decode.SkipDecoding()})
  return [int(source[i]["label"]) for i in range(len(source))]


def source_of(builder, split: str):
  """Split `split` (a TFDS slice such as "train[:8]" allowed) as a random-access source."""
  base = re.split(r"[\[(]", split, maxsplit=1)[0]
  if base not in builder.info.splits:
    raise DataError(f"the prepared data at {builder.data_dir} has no split {base!r}; it has "
                    f"{sorted(builder.info.splits)}")
  return builder.as_data_source(split)
