"""Flags images whose pixels may carry burned-in identifying text.

The profile does not clean pixel data (that is the Clean Pixel Data Option);
a file is flagged when Burned In Annotation is YES, or when it is not NO and
the image is of a kind that often has text in the pixels: ultrasound, secondary
capture, endoscopy and other photographic or "other" modalities, slide labels,
or a missing Modality. Flagged files are not written unless asked.
"""

from __future__ import annotations

from pydicom import uid as uid_lib
from pydicom.dataset import Dataset

# Modalities whose pixels often hold annotations, screen captures or labels.
RISKY_MODALITIES = frozenset({"US", "SC", "OT", "ES", "XC", "GM", "DOC"})
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_LABEL_IMAGE_TYPES = frozenset({"LABEL", "OVERVIEW"})


def _image_type(ds: Dataset) -> set[str]:
  value = ds.get("ImageType", None)
  if value is None:
    return set()
  return {str(v).upper() for v in ([value] if isinstance(value, str) else value)}


def reason(ds: Dataset) -> str | None:
  """Why `ds` may have burned-in identifying text, or None if it is not flagged."""
  if not any(k in ds for k in _PIXEL_KEYWORDS):
    return None
  flag = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
  if flag == "YES":
    return "BurnedInAnnotation=YES"
  if flag == "NO":
    return None
  unless = "and BurnedInAnnotation is not NO"
  modality = str(ds.get("Modality", "") or "").strip().upper()
  if not modality:
    return f"no Modality {unless}"
  if modality in RISKY_MODALITIES:
    return f"Modality={modality} often has burned-in text {unless}"
  if "Secondary Capture" in uid_lib.UID(str(ds.get("SOPClassUID", ""))).name:
    return f"a Secondary Capture image (Modality={modality}) {unless}"
  if _image_type(ds) & _LABEL_IMAGE_TYPES:
    return f"a slide label or overview image {unless}"
  return None
