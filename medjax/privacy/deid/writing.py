"""Writes a de-identified data set: a new file meta header and preamble, atomically.

PS3.15 E.1.1 item 7: the File Meta Information and the 128-byte preamble are
replaced with ones that describe the de-identifier. The data set keeps its
transfer syntax, so Pixel Data is written byte for byte as it was read.
"""

from __future__ import annotations

import os
import tempfile

from pydicom.dataset import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID

from medjax.privacy.deid import pseudonyms

IMPLEMENTATION_CLASS_UID = UID(pseudonyms.remap_uid(b"medjax", "medjax.privacy.deid"))
IMPLEMENTATION_VERSION = "MEDJAX_DEID_1"


def new_file_meta(ds: Dataset, transfer_syntax: UID) -> FileMetaDataset:
  meta = FileMetaDataset()
  meta.FileMetaInformationVersion = b"\x00\x01"
  meta.MediaStorageSOPClassUID = ds.SOPClassUID
  meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
  meta.TransferSyntaxUID = transfer_syntax
  meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
  meta.ImplementationVersionName = IMPLEMENTATION_VERSION
  return meta


def atomic_write(path: str, write) -> None:
  """Calls `write(tmp_path)`, then moves the file to `path`: never a half-written file."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".deid_tmp_")
  os.close(fd)
  try:
    write(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def save(ds: Dataset, path: str, transfer_syntax: UID) -> None:
  ds.file_meta = new_file_meta(ds, transfer_syntax)
  ds.preamble = b"\0" * 128
  atomic_write(path, lambda tmp: ds.save_as(tmp, enforce_file_format=True))
