"""TFDS plumbing shared by every task's builders: configs from keyword arguments,
`array_record` files, and a preparation that runs once and says so in the log.

TensorFlow is never needed: builders write `array_record` and are read back with
`builder.as_data_source(split)` (random access for grain).
"""

from __future__ import annotations

import os
import sys
import time

from absl import logging
import tensorflow_datasets as tfds


class KeywordBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A builder configured by keyword arguments (`make_config(**kwargs)`), written as
  `array_record`, whose options live in `builder_config.options` ((key, value) pairs)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  DESCRIPTION = ""

  def __init__(self, *, config=None, file_format="array_record", data_dir=None,
               version=None, **config_kwargs):
    if config is None:
      config = self.make_config(**config_kwargs)
    elif config_kwargs:
      raise TypeError(f"pass either config or {sorted(config_kwargs)}, not both")
    super().__init__(config=config, file_format=file_format, data_dir=data_dir,
                     version=version)

  @classmethod
  def make_config(cls, **kwargs) -> tfds.core.BuilderConfig:
    raise NotImplementedError

  @property
  def options(self) -> dict:
    return dict(self.builder_config.options)

  def _log_download_bytes(self) -> None:
    """Silences TFDS' own "Downloading and preparing" print: `prepare_once` logs."""

  def _log_download_done(self) -> None:
    """Silences TFDS' own "downloaded and prepared" print: `prepare_once` logs."""


def prepare_once(name: str, builder):
  """Writes `builder`'s dataset on the first call (logging start and end; it can take a
  minute); later calls find it prepared. Returns the builder."""
  # Not `builder.is_prepared()`, which warns about the missing folder on a first run.
  if os.path.exists(os.path.join(builder.data_dir, "dataset_info.json")):
    return builder
  if not sys.stderr.isatty():  # progress bars in a log file are control characters
    tfds.disable_progress_bar()
  logging.info("preparing %s into %s (first run only)...", name, builder.data_dir)
  start = time.perf_counter()
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(verify_ssl=False))
  count = sum(split.num_examples for split in builder.info.splits.values())
  logging.info("prepared %d examples of %s in %.1f s", count, name,
               time.perf_counter() - start)
  return builder
