"""The profile applied to one hand-made data set: each rule's effect checked."""

import datetime

from pydicom import datadict
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medjax.privacy.deid import dataset as dataset_lib
from medjax.privacy.deid import pseudonyms

KEY = b"s" * 32
UNKNOWN_PUBLIC = 0x0018FFF0


def _item(**attrs):
  ds = Dataset()
  for k, v in attrs.items():
    setattr(ds, k, v)
  return ds


def _ct():
  ds = _item(SOPClassUID=uid.CTImageStorage, SOPInstanceUID="1.2.3.4.5", Modality="CT",
             PatientID="PID123456", PatientName="Doe^Jane", StudyDate="20200115",
             SeriesDate="20200115", InstanceCreationDate="20200116",
             Manufacturer="ACME", InstitutionName="General Hospital",
             SOPInstanceUIDOfConcatenationSource="1.2.3.9")
  ds.ReferencedImageSequence = Sequence([_item(ReferencedSOPClassUID=uid.CTImageStorage,
                                               ReferencedSOPInstanceUID="1.2.3.4.4")])
  ds.SourceImageEvidenceSequence = Sequence([_item(ReferencedSOPInstanceUID="1.2.3.4.3")])
  block = ds.private_block(0x0029, "ACME 1.0", create=True)
  block.add_new(0x10, "LO", "secret")
  ds.add_new(UNKNOWN_PUBLIC, "LO", "who knows")
  return ds


def test_rules_on_an_image():
  assert not datadict.dictionary_has_tag(UNKNOWN_PUBLIC)
  ds = _ct()
  changes, pseudonym = dataset_lib.deidentify(ds, KEY)
  assert pseudonym == pseudonyms.pseudonym(KEY, "PID123456")
  assert ds.PatientID == ds.PatientName == pseudonym
  assert ds.SOPInstanceUID == pseudonyms.remap_uid(KEY, "1.2.3.4.5")  # U
  assert ds.SOPInstanceUIDOfConcatenationSource == pseudonyms.remap_uid(KEY, "1.2.3.9")
  assert ds.StudyDate == ""                 # Z
  assert "SeriesDate" not in ds             # X/D, Type 3 in General Series
  assert "InstitutionName" not in ds        # X/Z/D, Type 3 in General Equipment
  assert "ReferencedImageSequence" not in ds  # X/Z/U*, Type 3 in General Image
  assert ds.InstanceCreationDate == "19000101"  # a date the table does not list: dummy
  assert ds.Manufacturer == "ACME"          # not in the table: kept
  ref = ds.SourceImageEvidenceSequence[0].ReferencedSOPInstanceUID  # kept sequence,
  assert ref == pseudonyms.remap_uid(KEY, "1.2.3.4.3")                # UIDs remapped
  assert not any(e.tag.is_private for e in ds.iterall())
  assert UNKNOWN_PUBLIC not in ds
  assert ds.PatientIdentityRemoved == "YES"
  assert ds.LongitudinalTemporalInformationModified == "REMOVED"
  actions = {c.keyword: c.action for c in changes}
  assert actions["SeriesDate"] == "X" and actions["StudyDate"] == "Z"
  assert actions["SOPInstanceUID"] == "U" and actions["PatientID"] == "P"
  assert "Manufacturer" not in actions
  nested = [c for c in changes if c.tag == "(0008,9154)[0].(0008,1155)"]
  assert [c.keyword for c in nested] == [
      "SourceImageEvidenceSequence[0].ReferencedSOPInstanceUID"]
  assert nested[0].action == "U"


def test_audit_holds_no_values():
  ds = _ct()
  changes, _ = dataset_lib.deidentify(ds, KEY)
  text = " ".join(f"{c.tag} {c.keyword} {c.action} {c.source}" for c in changes)
  for original in ("PID123456", "Doe^Jane", "20200115", "1.2.3.4.5", "General Hospital",
                   "secret"):
    assert original not in text


def test_sr_content_keeps_codes_and_dummies_text():
  ds = _item(SOPClassUID=uid.ComprehensiveSRStorage, SOPInstanceUID="1.2.5", Modality="SR",
             PatientID="P1", ContentDate="20200101", ContentTime="101010")
  code = _item(CodeValue="121071", CodingSchemeDesignator="DCM", CodeMeaning="Finding")
  text = _item(ValueType="TEXT", TextValue="Seen by Dr. Smith on 2 Jan",
               ConceptNameCodeSequence=Sequence([code]))
  ds.ContentSequence = Sequence([text])
  dataset_lib.deidentify(ds, KEY)
  item = ds.ContentSequence[0]
  assert item.TextValue == "ANONYMIZED"
  assert item.ConceptNameCodeSequence[0].CodeMeaning == "Finding"
  assert ds.ContentDate == "19000101"  # Z/D: Type 1 in SR Document General, so a dummy


def test_date_shift_option():
  ds = _ct()
  dataset_lib.deidentify(ds, KEY, max_shift_days=10)
  offset = pseudonyms.date_offset_days(KEY, "PID123456", 10)
  expected = (datetime.date(2020, 1, 15) + datetime.timedelta(days=offset)).strftime("%Y%m%d")
  assert ds.StudyDate == ds.SeriesDate == expected  # kept, shifted (the option's C)
  assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
  codes = [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]
  assert codes == ["113100", "113107"]
