"""Files that are not whole DICOM instances are refused with a reason."""

import pytest
from pydicom.data import get_testdata_file

from medjax.privacy.deid import reading


def _cut(tmp_path, name, keep):
  data = open(get_testdata_file(name), "rb").read()
  path = tmp_path / f"cut_{name}"
  path.write_bytes(data[:int(len(data) * keep)])
  return str(path)


@pytest.mark.parametrize("name, keep", [("CT_small.dcm", 0.5), ("CT_small.dcm", 0.98),
                                        ("test-SR.dcm", 0.5), ("JPEG2000.dcm", 0.6)])
def test_truncated_files_are_refused(tmp_path, name, keep):
  with pytest.raises(reading.SkipFile, match="truncated"):
    reading.read_instance(_cut(tmp_path, name, keep))


def test_pydicoms_truncated_sample_is_refused():
  with pytest.raises(reading.SkipFile, match=r"\(7FE0,0010\) declares 8192 bytes"):
    reading.read_instance(get_testdata_file("MR_truncated.dcm"))


def test_non_dicom_and_dicomdir(tmp_path):
  text = tmp_path / "notes.txt"
  text.write_text("Patient: John Smith, MRN 12345\n" * 20)
  with pytest.raises(reading.SkipFile, match="not a DICOM file"):
    reading.read_instance(str(text))
  with pytest.raises(reading.SkipFile, match="DICOMDIR"):
    reading.read_instance(get_testdata_file("DICOMDIR"))


def test_whole_files_read_including_ones_without_a_meta_header():
  for name in ("CT_small.dcm", "rtstruct.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm"):
    ds = reading.read_instance(get_testdata_file(name))
    assert "SOPInstanceUID" in ds
  # rtstruct.dcm has no preamble or meta: its transfer syntax comes from the encoding.
  ds = reading.read_instance(get_testdata_file("rtstruct.dcm"))
  assert reading.transfer_syntax(ds) in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")
