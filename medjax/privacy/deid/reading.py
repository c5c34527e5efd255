"""Reads one file as a DICOM instance, or says why it is skipped.

pydicom reads a truncated file without complaint (the last element is simply
short, or a cut encapsulated Pixel Data disappears), so the file is checked:
every top-level element must hold the bytes it declares, the whole data set
must parse, and an image must have all of its native pixel data.
"""

from __future__ import annotations

import math
import os

import pydicom
from pydicom import uid as uid_lib
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

_UNDEFINED_LENGTH = 0xFFFFFFFF


class SkipFile(Exception):
  """The file is not de-identified: the message says why."""


def _read(path: str) -> Dataset:
  try:
    return pydicom.dcmread(path)
  except InvalidDicomError:
    pass  # no preamble and meta header: many valid files; read it raw below
  except OSError as e:
    raise SkipFile(f"cannot read it: {e.strerror or e}") from None
  except Exception as e:  # pylint: disable=broad-except  # pydicom's parse errors vary
    raise SkipFile(f"truncated or corrupt DICOM file ({type(e).__name__}: {e})") from None
  try:
    ds = pydicom.dcmread(path, force=True)
    if "SOPClassUID" in ds and "SOPInstanceUID" in ds:
      return ds
  except Exception:  # pylint: disable=broad-except  # forced reads of non-DICOM bytes
    pass
  raise SkipFile("not a DICOM file")


def _check_lengths(ds: Dataset, file_size: int) -> None:
  """Every element holds its declared length, and no cut element header follows the
  last one (pydicom stops quietly at either)."""
  raw = None
  for tag in list(ds.keys()):
    raw = ds.get_item(tag)
    if (isinstance(raw, RawDataElement) and raw.length != _UNDEFINED_LENGTH
        and raw.value is not None and len(raw.value) < raw.length):
      raise SkipFile(f"truncated DICOM file: element ({tag.group:04X},{tag.element:04X}) "
                     f"declares {raw.length} bytes but the file ends after {len(raw.value)}")
  if isinstance(raw, RawDataElement) and raw.length != _UNDEFINED_LENGTH:
    left = file_size - (raw.value_tell + raw.length)
    if left > 0:
      raise SkipFile(f"truncated DICOM file: {left} bytes after the last whole element "
                     "(the file ends inside an element)")


def _check_parses(ds: Dataset) -> None:
  try:
    for _ in ds.iterall():  # converts every element, sequences included
      pass
  except Exception as e:  # pylint: disable=broad-except  # pydicom's parse errors vary
    raise SkipFile(f"truncated or corrupt DICOM file ({type(e).__name__}: {e})") from None


def transfer_syntax(ds: Dataset) -> uid_lib.UID:
  """The file's transfer syntax: from its meta header, else from how it was read."""
  meta = getattr(ds, "file_meta", None)
  if meta is not None and "TransferSyntaxUID" in meta:
    return uid_lib.UID(meta.TransferSyntaxUID)
  implicit, little = ds.original_encoding
  if implicit:
    return uid_lib.ImplicitVRLittleEndian
  return uid_lib.ExplicitVRLittleEndian if little else uid_lib.ExplicitVRBigEndian


def _check_pixels(ds: Dataset) -> None:
  if "Rows" not in ds or "Columns" not in ds:
    return
  if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
    raise SkipFile("truncated DICOM file: an image (Rows, Columns) without Pixel Data")
  if "PixelData" not in ds or transfer_syntax(ds).is_compressed:
    return
  try:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if str(ds.get("PhotometricInterpretation", "")).endswith("_422"):
      samples = 2  # chroma shared by two pixels: Y Y Cb Cr
    bits = ds.Rows * ds.Columns * samples * frames * int(ds.BitsAllocated)
  except (AttributeError, TypeError, ValueError):
    return  # an incomplete image description: left to the reader of the output
  expected = math.ceil(bits / 8)
  if len(ds.PixelData) < expected:
    raise SkipFile(f"truncated DICOM file: Pixel Data has {len(ds.PixelData)} bytes, the "
                   f"image needs {expected}")


def read_instance(path: str) -> Dataset:
  """The data set of a composite instance at `path`; raises SkipFile otherwise."""
  ds = _read(path)
  meta = getattr(ds, "file_meta", None)
  media_class = meta.get("MediaStorageSOPClassUID") if meta is not None else None
  if "DirectoryRecordSequence" in ds or media_class == uid_lib.MediaStorageDirectoryStorage:
    raise SkipFile("a DICOMDIR (a media directory, not an instance): build a new one for "
                   "the output")
  _check_lengths(ds, os.path.getsize(path))
  _check_parses(ds)
  if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
    raise SkipFile("no SOP Class/Instance UID: not a composite instance")
  _check_pixels(ds)
  return ds
