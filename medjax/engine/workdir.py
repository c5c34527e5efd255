"""Checks of the run and output directories a main is given, made before any model is built.

A workdir that is a file, lies under a file, or cannot be written (a read-only
disk or directory) is refused with one `InputError` naming the flag, instead of
an OSError from deep inside checkpointing minutes later.
"""

from __future__ import annotations

import json
import os
import tempfile

from medjax.engine.errors import InputError


def _probe(directory: str) -> None:
  """Creates and removes a file in `directory`; raises OSError where that is refused.

  A real write, not `os.access`: that says yes to root on a read-only directory
  and knows nothing of read-only mounts.
  """
  with tempfile.NamedTemporaryFile(dir=directory, prefix=".medjax_write_check_"):
    pass


def _nearest_existing(path: str) -> str:
  path = os.path.abspath(path)
  while not os.path.exists(path):
    parent = os.path.dirname(path)
    if parent == path:
      break
    path = parent
  return path


def require_writable(path: str, flag: str = "--workdir") -> str:
  """Makes directory `path` if needed after checking files can be written there.

  Raises InputError naming `flag` when `path` is empty or a URL, it or a parent
  is a file, or the directory (or, for a new one, its nearest existing parent)
  refuses a new file.
  """
  if not path:
    raise InputError(f"{flag} is empty: give a directory")
  if "://" in path:
    raise InputError(f"{flag}={path}: URLs are not supported; give a path every process "
                     "sees (a shared disk, or a bucket mounted with gcsfuse)")
  _make_writable_dir(path, f"{flag}={path}")
  return path


def _make_writable_dir(path: str, label: str) -> None:
  existing = _nearest_existing(path)
  if not os.path.isdir(existing):
    where = "is a file" if existing == os.path.abspath(path) else f"is under a file, {existing}"
    raise InputError(f"{label} {where}; give a directory")
  try:
    _probe(existing)
  except OSError as e:
    parent = "" if existing == os.path.abspath(path) else f" (its parent {existing})"
    raise InputError(f"{label}{parent} is not writable: {e.strerror or e}") from None
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise InputError(f"{label}: cannot create it: {e.strerror or e}") from None


def require_existing(path: str, flag: str = "--workdir", holds: str = "a trained run") -> str:
  """Returns `path` if it is an existing directory, else raises InputError naming `flag`."""
  if not path:
    raise InputError(f"{flag} is empty: give the directory of {holds}")
  if not os.path.exists(path):
    raise InputError(f"{flag}={path} does not exist (expected {holds})")
  if not os.path.isdir(path):
    raise InputError(f"{flag}={path} is a file, not a directory (expected {holds})")
  return path


def require_output_file(path: str, flag: str) -> str:
  """Checks output file `path` can be written: not a directory, its folder writable."""
  if not path:
    raise InputError(f"{flag} is empty: give a file name")
  if os.path.isdir(path):
    raise InputError(f"{flag}={path} is a directory; give a file name")
  folder = os.path.dirname(os.path.abspath(path))
  _make_writable_dir(folder, f"{flag}={path}: its folder {folder}")
  return path


CONFIG_FILE = "config.json"  # the resolved config of a training run, in its workdir


def save_config(workdir: str, config) -> str:
  """Writes `<workdir>/config.json` (the resolved config, every flag applied)."""
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_FILE)
  with open(path, "w", encoding="utf-8") as f:
    f.write(config.to_json(indent=1))
  return path


def load_config(workdir: str):
  """The `ml_collections.ConfigDict` a run saved in `workdir`, or None if it saved none."""
  import ml_collections  # pylint: disable=import-outside-toplevel
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    try:
      return ml_collections.ConfigDict(json.load(f))
    except json.JSONDecodeError as e:
      raise InputError(f"{path} is not valid JSON ({e}): the run's saved config") from None
