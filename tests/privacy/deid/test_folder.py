"""De-identifying folders of pydicom's sample files: nothing identifying left in the
output bytes, pixels untouched, UIDs and dates consistent, bad inputs refused."""

import csv
import datetime
import json
import re

import pydicom
import pytest
from pydicom import uid as uid_lib

from medjax.engine.errors import InputError
from medjax.privacy import deid
from medjax.privacy.deid import pseudonyms
from medjax.privacy.deid import profile_table
from medjax.privacy.deid import writing
from tests.privacy.deid import testfiles

KEY = bytes(range(32))
_TABLE = {t: code for t, _, code in profile_table.BASIC_PROFILE}
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
             "UC", "UI", "UR", "UT"}
_NARRATIVE = {"PN", "ST", "LT", "UT", "UC"}


def _strings(elem):
  if elem.VR not in _TEXT_VRS or elem.value in (None, ""):
    return []
  value = elem.value
  values = list(value) if isinstance(value, (list, pydicom.multival.MultiValue)) else [value]
  return [str(v).strip() for v in values if len(str(v).strip()) >= 4
          and not str(v).startswith("1.2.840.10008.")]


def _all_strings(ds):
  return [s for e in ds.iterall() for s in _strings(e)]


def protected_values(ds, in_dummy=False):
  """Original values that must not survive: of private attributes and of every
  profile attribute (none is K), all of the contents of removed or emptied
  sequences, and the free text in dummied (D) sequences."""
  found = []
  for elem in ds:
    code = _TABLE.get(int(elem.tag))
    if elem.VR == "SQ":
      if elem.tag.is_private or code in ("X", "Z", "X/Z", "X/D", "X/Z/D"):
        found += [s for item in elem.value for s in _all_strings(item)]
      else:
        for item in elem.value:
          found += protected_values(item, in_dummy or code == "D")
    elif elem.tag.is_private or code is not None or (in_dummy and elem.VR in _NARRATIVE):
      found += _strings(elem)
  return found


def kept_values(ds, in_dummy=False):
  """Values of attributes the profile keeps (not listed, not private, not dates or
  instance UIDs, not free text in a D sequence): a protected value within one of
  them (an Institution Name "TOSHIBA" in the Manufacturer "TOSHIBA_MEC") may
  legitimately be in the output."""
  found = []
  for elem in ds:
    code = _TABLE.get(int(elem.tag))
    if elem.tag.is_private or code in ("X", "Z", "X/Z", "X/D", "X/Z/D", "X/Z/U*"):
      continue
    if elem.VR == "SQ":
      found += [s for item in elem.value for s in kept_values(item, in_dummy or code == "D")]
    elif code is None and (elem.VR not in ("DA", "DT", "TM", "UI") or elem.keyword.endswith(
        ("ClassUID", "SchemeUID"))) and not (in_dummy and elem.VR in _NARRATIVE):
      found += _strings(elem)  # classes and coding schemes name no one
  return found


def _run(tmp_path, options=deid.Options(), key=KEY):
  out = tmp_path / "out"
  key_file = tmp_path / "key"
  key_file.write_text(key.hex())
  summary = deid.run(str(tmp_path / "in"), str(out), str(key_file), options)
  return out, summary


def _without_new_uids(data: bytes) -> bytes:
  """`data` less the 2.25. UIDs made here: keyed digests whose digits would match short
  numeric values (a Referring Physician's Name "2721") by chance."""
  return re.sub(rb"2\.25\.[0-9]+", b"", data)


def path_bytes(ds):
  return open(ds.filename, "rb").read()


def _by_sop(out_dir):
  return {pydicom.dcmread(p).SOPInstanceUID: p for p in testfiles.outputs(out_dir)}


SAMPLES = ("CT_small.dcm", "MR_small.dcm", "rtstruct.dcm", "test-SR.dcm", "rtplan.dcm",
           "waveform_ecg.dcm")


def test_no_protected_value_left_in_output_bytes(tmp_path):
  inputs = testfiles.copy(tmp_path / "in", *SAMPLES) + testfiles.copy_series(
      tmp_path / "in" / "series")
  out, summary = _run(tmp_path)
  assert summary["files_written"] == len(inputs) and summary["files_skipped"] == 0
  outputs = _by_sop(out)
  audit_bytes = _without_new_uids((tmp_path / "out.deid_audit.csv").read_bytes())
  checked = 0
  for path in inputs:
    ds = pydicom.dcmread(path, force=True)
    new_uid = pseudonyms.remap_uid(KEY, ds.SOPInstanceUID)
    data = _without_new_uids(outputs[new_uid].read_bytes())
    kept = kept_values(ds)
    values = {v for v in set(protected_values(ds)) | {ds.PatientID}
              if not any(v in k for k in kept)}
    for value in values:
      assert value.encode() not in data, (path.name, value)
      assert value.encode() not in audit_bytes, (path.name, value)
    checked += len(values)
  assert checked > 300  # names, IDs, UIDs, dates, descriptions, private values


def test_outputs_read_back_with_pixels_identical_and_markers(tmp_path):
  inputs = testfiles.copy(tmp_path / "in", "CT_small.dcm", "MR_small_bigendian.dcm",
                          "JPEG2000.dcm", "rtstruct.dcm", "SC_rgb_rle.dcm")
  out, _ = _run(tmp_path, deid.Options(allow_burned_in=True))  # JPEG2000.dcm is an SC
  outputs = _by_sop(out)
  for path in inputs:
    src = pydicom.dcmread(path, force=True)
    dst = pydicom.dcmread(outputs[pseudonyms.remap_uid(KEY, src.SOPInstanceUID)])  # no force
    assert dst.preamble == b"\0" * 128
    assert dst.file_meta.ImplementationClassUID == writing.IMPLEMENTATION_CLASS_UID
    assert dst.PatientIdentityRemoved == "YES"
    assert dst.PatientID == dst.PatientName == pseudonyms.pseudonym(KEY, src.PatientID)
    meta = getattr(src, "file_meta", {})
    for keyword in ("ImplementationVersionName", "SourceApplicationEntityTitle"):
      if keyword in meta:  # the input's meta header is replaced, not copied
        assert meta.data_element(keyword).value.encode() not in path_bytes(dst)
    assert dst.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert not any(e.tag.is_private for e in dst.iterall())
    if "PixelData" in src:
      assert dst.PixelData == src.PixelData  # byte for byte, compressed ones too
      assert dst.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID


def test_uids_consistent_across_the_series_and_runs(tmp_path):
  inputs = testfiles.copy_series(tmp_path / "in")
  out, _ = _run(tmp_path)
  pairs = {"StudyInstanceUID": {}, "SeriesInstanceUID": {}, "FrameOfReferenceUID": {}}
  outputs = _by_sop(out)
  for path in inputs:
    src = pydicom.dcmread(path)
    dst = pydicom.dcmread(outputs[pseudonyms.remap_uid(KEY, src.SOPInstanceUID)])
    for keyword, mapping in pairs.items():
      if keyword in src:
        mapping.setdefault(src.data_element(keyword).value, set()).add(dst.get(keyword))
  studies = pairs["StudyInstanceUID"]
  assert len(studies) == 3  # three studies in, three out, each mapped to one UID
  for mapping in pairs.values():
    assert all(len(new) == 1 for new in mapping.values())
    news = [next(iter(v)) for v in mapping.values()]
    assert len(set(news)) == len(news)  # different in, different out
    assert all(n.startswith("2.25.") and n not in mapping for n in news)
  # A second run with the same key reproduces every output; another key does not.
  (tmp_path / "run2").mkdir()
  out2 = tmp_path / "run2" / "out"
  key_file = tmp_path / "key"
  deid.run(str(tmp_path / "in"), str(out2), str(key_file))
  assert set(_by_sop(out2)) == set(outputs)
  other = tmp_path / "run3"
  other.mkdir()
  (other / "key").write_text((b"x" * 32).hex())
  deid.run(str(tmp_path / "in"), str(other / "out"), str(other / "key"))
  assert not set(_by_sop(other / "out")) & set(outputs)


def test_references_in_sequences_follow_the_referenced_file(tmp_path):
  """An RT structure set and the CT image it references: after de-identification the
  nested Referenced SOP Instance UID still names the (new) CT instance."""
  ct_path, rt_path = testfiles.copy(tmp_path / "in", "CT_small.dcm", "rtstruct.dcm")
  rt = pydicom.dcmread(rt_path, force=True)
  study = rt.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
  ct = pydicom.dcmread(ct_path)
  ct.SOPInstanceUID = study.ReferencedSOPInstanceUID  # make the CT the referenced one
  ct.save_as(ct_path)
  out, _ = _run(tmp_path)
  new = [pydicom.dcmread(p) for p in testfiles.outputs(out)]
  new_ct = next(d for d in new if d.Modality == "CT")
  new_rt = next(d for d in new if d.Modality == "RTSTRUCT")
  new_study = new_rt.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
  assert new_study.ReferencedSOPInstanceUID == new_ct.SOPInstanceUID
  assert new_study.ReferencedSOPInstanceUID != study.ReferencedSOPInstanceUID
  assert new_study.ReferencedSOPClassUID == study.ReferencedSOPClassUID  # a class: kept
  for roi in new_rt.StructureSetROISequence:
    assert roi.ReferencedFrameOfReferenceUID == pseudonyms.remap_uid(
        KEY, rt.StructureSetROISequence[0].ReferencedFrameOfReferenceUID)


def _dates(ds):
  return {e.keyword: datetime.datetime.strptime(e.value, "%Y%m%d").date()
          for e in ds.iterall() if e.VR == "DA" and e.value}


def test_date_shift_keeps_intervals_per_patient(tmp_path):
  inputs = testfiles.copy_series(tmp_path / "in") + testfiles.copy(
      tmp_path / "in", "CT_small.dcm")
  out, _ = _run(tmp_path, deid.Options(date_shift_days_max=45))
  outputs = _by_sop(out)
  shifts = {}
  for path in inputs:
    src = pydicom.dcmread(path)
    dst = pydicom.dcmread(outputs[pseudonyms.remap_uid(KEY, src.SOPInstanceUID)])
    before, after = _dates(src), _dates(dst)
    assert set(before) == set(after) and "StudyDate" in after
    deltas = {(after[k] - before[k]).days for k in before}
    assert len(deltas) == 1  # every date of the file moved by the same number of days
    shifts.setdefault(src.PatientID, set()).update(deltas)
    assert dst.StudyTime == src.StudyTime  # whole days: times of day kept
    assert dst.LongitudinalTemporalInformationModified == "MODIFIED"
  for patient, deltas in shifts.items():
    assert deltas == {pseudonyms.date_offset_days(KEY, patient, 45)}
    assert 1 <= abs(next(iter(deltas))) <= 45


def test_without_shift_dates_follow_the_basic_profile(tmp_path):
  testfiles.copy(tmp_path / "in", "CT_small.dcm")
  out, _ = _run(tmp_path)
  dst = pydicom.dcmread(testfiles.outputs(out)[0])
  assert dst.StudyDate == "" and dst.ContentDate == ""  # Z, Z/D (Type 2C in CT)
  assert "SeriesDate" not in dst and "AcquisitionDate" not in dst  # X/D, X/Z: Type 3


def test_bad_files_are_skipped_and_listed(tmp_path):
  inp = tmp_path / "in"
  testfiles.copy(inp, "CT_small.dcm", "SC_rgb_small_odd.dcm", "MR_small.dcm",
                 "MR_small_implicit.dcm")  # the MR files: one instance, twice
  (inp / "notes.txt").write_text("not dicom")
  data = (inp / "CT_small.dcm").read_bytes()
  (inp / "cut.dcm").write_bytes(data[:len(data) // 2])
  out, summary = _run(tmp_path)
  reasons = {s["file"]: s["reason"] for s in summary["skipped"]}
  assert summary["files_written"] == 2
  assert reasons["notes.txt"] == "not a DICOM file"
  assert reasons["MR_small_implicit.dcm"].startswith("same SOP Instance UID as MR_small.dcm")
  assert reasons["cut.dcm"].startswith("truncated DICOM file: element (7FE0,0010)")
  assert "burned-in" in reasons["SC_rgb_small_odd.dcm"]
  with open(tmp_path / "out.deid_audit.csv", encoding="utf-8") as f:
    skipped = {r["file"] for r in csv.DictReader(f) if r["action"] == "SKIPPED"}
  assert skipped == set(reasons)
  assert json.loads((tmp_path / "out.deid_summary.json").read_text())["files_skipped"] == 4
  assert len(testfiles.outputs(out)) == 2
  # --allow_burned_in writes it, and the summary says so.
  _, summary = _run(tmp_path, deid.Options(allow_burned_in=True))
  assert summary["files_written"] == 3 and summary["written_with_burned_in_risk"]


@pytest.mark.parametrize("output", ["in", "in/sub"])
def test_output_inside_input_is_refused(tmp_path, output):
  testfiles.copy(tmp_path / "in", "CT_small.dcm")
  with pytest.raises(InputError, match="inside --input_dir"):
    deid.run(str(tmp_path / "in"), str(tmp_path / output))
  assert not (tmp_path / "in" / "sub").exists()


def test_input_inside_output_is_refused(tmp_path):
  testfiles.copy(tmp_path / "in", "CT_small.dcm")
  with pytest.raises(InputError, match="would share the originals"):
    deid.run(str(tmp_path / "in"), str(tmp_path))


def test_bad_options_are_refused(tmp_path):
  testfiles.copy(tmp_path / "in", "CT_small.dcm")
  with pytest.raises(InputError, match="--date_shift_days_max=-3"):
    deid.run(str(tmp_path / "in"), str(tmp_path / "out"),
             options=deid.Options(date_shift_days_max=-3))
  with pytest.raises(InputError, match="--key_file=.* is inside --output_dir"):
    deid.run(str(tmp_path / "in"), str(tmp_path / "out"), str(tmp_path / "out" / "k"))
  with pytest.raises(InputError, match="--input_dir=.* does not exist"):
    deid.run(str(tmp_path / "nope"), str(tmp_path / "out"))


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
  testfiles.copy(tmp_path / "in", "CT_small.dcm")

  def broken_save(self, path, **kwargs):
    with open(path, "wb") as f:
      f.write(b"half")
    raise OSError("disk full")

  monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", broken_save)
  with pytest.raises(OSError, match="disk full"):
    _run(tmp_path)
  assert testfiles.outputs(tmp_path / "out") == []  # neither a partial file nor a temp


def test_generated_key_is_written_beside_the_output_and_reused(tmp_path):
  testfiles.copy(tmp_path / "in", "CT_small.dcm")
  first = deid.run(str(tmp_path / "in"), str(tmp_path / "out"))
  assert first["key_file"] == str(tmp_path / "out.deid_key")
  names = {p.name for p in testfiles.outputs(tmp_path / "out")}
  deid.run(str(tmp_path / "in"), str(tmp_path / "out"))  # same key found and reused
  assert {p.name for p in testfiles.outputs(tmp_path / "out")} == names
  assert not any(p.suffix != ".dcm" for p in testfiles.outputs(tmp_path / "out"))
  assert uid_lib.UID(next(iter(names))[:-4]).is_valid
