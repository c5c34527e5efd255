"""Combined action codes resolve by the attribute's type in the file's IOD."""

import pytest
from pydicom import uid

from medjax.privacy.deid import iod_types


@pytest.mark.parametrize("code, keyword, sop_class, action", [
    # Type 3 in General Equipment (CT): removed.
    ("X/Z/D", "InstitutionName", uid.CTImageStorage, "X"),
    # Device Serial Number is Type 1 in Enhanced General Equipment: dummy.
    ("X/Z/D", "DeviceSerialNumber", uid.EnhancedMRImageStorage, "D"),
    ("X/Z/D", "DeviceSerialNumber", uid.CTImageStorage, "X"),
    # Operators' Name is Type 2 in the RT Series module: zero length.
    ("X/Z/D", "OperatorsName", uid.RTStructureSetStorage, "Z"),
    # Content Date: Type 2C in General Image (Z), Type 1 in SR Document General (D).
    ("Z/D", "ContentDate", uid.CTImageStorage, "Z"),
    ("Z/D", "ContentDate", uid.ComprehensiveSRStorage, "D"),
    ("Z/D", "ContentDate", uid.EnhancedSRStorage, "D"),
    # RT Plan Date is Type 2 and X/D offers no Z: a dummy.
    ("X/D", "RTPlanDate", uid.RTPlanStorage, "D"),
    ("X/D", "SeriesDate", uid.MRImageStorage, "X"),
    ("X/Z", "AcquisitionContextSequence", uid.VLPhotographicImageStorage, "Z"),
    ("X/Z", "AcquisitionDate", uid.CTImageStorage, "X"),
    ("X/Z/U*", "ReferencedImageSequence", uid.CTImageStorage, "X"),
    ("X/Z/U*", "ReferencedImageSequence",
     uid.GrayscaleSoftcopyPresentationStateStorage, "U*"),
    ("U", "SOPInstanceUID", uid.CTImageStorage, "U"),
])
def test_resolve(code, keyword, sop_class, action):
  assert iod_types.resolve(code, keyword, iod_types.family(sop_class)) == action


def test_unknown_sop_class_is_a_plain_image():
  assert iod_types.family("1.2.3.4") == "image"
  assert iod_types.family("") == "image"
