"""Resolves the profile's combined action codes (X/Z, X/D, X/Z/D, Z/D, X/Z/U*) by IOD.

Table E.1-1a: "X/Z: X unless Z is required to maintain IOD conformance (Type 3
versus Type 2)", and so on. The type of each such attribute in the IOD of the
file's SOP Class comes from the small table below (PS3.3 module types for the
IOD families we distinguish); an attribute not listed for the family is taken
as Type 3 (optional), so the most removing choice is made. A conditional type
(1C, 2C) counts as its base type: the attribute is in the file, so its creator
judged the condition met.
"""

from __future__ import annotations

from pydicom import uid as uid_lib

# Types that hold in every IOD that has the attribute's module.
_COMMON = {
    "ContrastBolusAgent": 2,      # Contrast/Bolus Module
    "PatientSexNeutered": 2,      # Patient Module, 2C (animals)
    "ContentCreatorName": 2,      # Content Identification Macro
    "ReviewerName": 2,            # Approval Module, 2C
}

# Per IOD family: PS3.3 types of the combined-code attributes that are not Type 3.
_FAMILY_TYPES = {
    "image": {},
    # Multi-frame Functional Groups (Content Date/Time 1), Enhanced General
    # Equipment (Device Serial Number 1), Enhanced CT/MR/XA Image (Acquisition
    # DateTime 1C), Acquisition Context (2), Enhanced Series (Referenced PPS 1C).
    "enhanced": {"ContentDate": 1, "ContentTime": 1, "AcquisitionDateTime": 1,
                 "DeviceSerialNumber": 1, "AcquisitionContextSequence": 2,
                 "ReferencedPerformedProcedureStepSequence": 1},
    # Whole slide imaging adds the Slide Label module (Label Text, Barcode Value 2).
    "wsi": {"ContentDate": 1, "ContentTime": 1, "AcquisitionDateTime": 1,
            "DeviceSerialNumber": 1, "AcquisitionContextSequence": 2,
            "LabelText": 2, "BarcodeValue": 2},
    "visible_light": {"AcquisitionContextSequence": 2},
    # RT Series (Operators' Name 2), RT Structure Set (Structure Set Date/Time 2).
    "rt_structure_set": {"OperatorsName": 2, "StructureSetTime": 2},
    # RT General Plan (RT Plan Date/Time 2).
    "rt_plan": {"OperatorsName": 2, "RTPlanDate": 2, "RTPlanTime": 2},
    # RT General Treatment Record (Treatment Date/Time 2).
    "rt_record": {"OperatorsName": 2, "TreatmentDate": 2, "TreatmentTime": 2},
    "rt_other": {"OperatorsName": 2},
    # SR Document General (Content Date/Time 1), SR Document Series (Referenced PPS 2).
    "sr": {"ContentDate": 1, "ContentTime": 1, "ReferencedPerformedProcedureStepSequence": 2},
    # Presentation State Relationship: Referenced Series > Referenced Image Sequence 1.
    "presentation_state": {"ReferencedImageSequence": 1},
}

# (substring of the SOP Class name, family); the first match wins.
_FAMILY_BY_NAME = (
    ("SR Storage", "sr"), ("Key Object Selection", "sr"),
    ("Whole Slide", "wsi"),
    ("Enhanced", "enhanced"), ("Legacy Converted", "enhanced"),
    ("Segmentation", "enhanced"), ("Parametric Map", "enhanced"),
    ("Breast Tomosynthesis", "enhanced"), ("X-Ray 3D", "enhanced"),
    ("Photoacoustic", "enhanced"),
    ("VL ", "visible_light"), ("Ophthalmic", "visible_light"),
    ("RT Structure Set", "rt_structure_set"),
    ("RT Plan", "rt_plan"), ("RT Ion Plan", "rt_plan"),
    ("Treatment Record", "rt_record"), ("RT ", "rt_other"),
    ("Presentation State", "presentation_state"),
)

# Combined code -> the action for Type 1, Type 2 and Type 3.
_BY_TYPE = {
    "X/Z": {1: "Z", 2: "Z", 3: "X"},
    "X/D": {1: "D", 2: "D", 3: "X"},   # Z is not offered: a Type 2 keeps a dummy
    "X/Z/D": {1: "D", 2: "Z", 3: "X"},
    "Z/D": {1: "D", 2: "Z", 3: "Z"},
    "X/Z/U*": {1: "U*", 2: "Z", 3: "X"},
}
COMBINED_CODES = frozenset(_BY_TYPE)


def family(sop_class_uid: str) -> str:
    """The IOD family of a SOP Class UID ("image" for any not listed or unknown)."""
    name = uid_lib.UID(str(sop_class_uid or "")).name
    for part, fam in _FAMILY_BY_NAME:
        if part in name:
            return fam
    return "image"


def attribute_type(keyword: str, fam: str) -> int:
    """The attribute's type (1, 2 or 3) in an IOD of family `fam`."""
    return _FAMILY_TYPES[fam].get(keyword, _COMMON.get(keyword, 3))


def resolve(code: str, keyword: str, fam: str) -> str:
    """The single action (X, Z, D, K, U or U*) a table code means for this attribute."""
    if code not in _BY_TYPE:
        return code
    return _BY_TYPE[code][attribute_type(keyword, fam)]
