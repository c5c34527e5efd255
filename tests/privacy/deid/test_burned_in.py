"""Which images are flagged as possibly carrying burned-in annotation."""

import pytest
from pydicom import uid
from pydicom.dataset import Dataset

from medjax.privacy.deid import burned_in


def _image(**attrs):
  ds = Dataset()
  ds.SOPClassUID = uid.CTImageStorage
  ds.Modality = "CT"
  ds.PixelData = b"\0\0"
  for k, v in attrs.items():
    setattr(ds, k, v)
  return ds


@pytest.mark.parametrize("attrs, flagged", [
    ({}, False),
    ({"BurnedInAnnotation": "YES"}, True),
    ({"Modality": "US"}, True),
    ({"Modality": "US", "BurnedInAnnotation": "NO"}, False),
    ({"Modality": "OT"}, True),
    ({"Modality": ""}, True),
    ({"Modality": "XA", "SOPClassUID": uid.SecondaryCaptureImageStorage}, True),
    ({"Modality": "XA", "SOPClassUID": uid.XRayAngiographicImageStorage}, False),
    ({"Modality": "SM", "ImageType": ["ORIGINAL", "PRIMARY", "LABEL"]}, True),
])
def test_flags(attrs, flagged):
  assert (burned_in.reason(_image(**attrs)) is not None) == flagged


def test_no_pixels_no_flag():
  ds = _image(BurnedInAnnotation="YES")
  del ds.PixelData
  assert burned_in.reason(ds) is None
