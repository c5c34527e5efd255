"""experiments.bench.deid_compare: the effect classes, and the table when dicognito is
installed (a comparison-only tool, not a medjax dependency)."""

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from experiments.bench import deid_compare


@pytest.mark.parametrize("before, after, expected", [
    (("PN", "Doe^Jane"), None, "removed"),
    (("PN", "Doe^Jane"), ("PN", ""), "emptied"),
    (("PN", "Doe^Jane"), ("PN", "ANON"), "replaced"),
    (("PN", "Doe^Jane"), ("PN", "Doe^Jane"), "kept"),
    (("PN", ""), ("PN", ""), "kept (empty)"),
    (("SQ", [Dataset()]), ("SQ", []), "emptied"),
])
def test_effect(before, after, expected):
  def elem(pair):
    vr, value = pair
    return DataElement(0x00100010, vr, Sequence(value) if vr == "SQ" else value)
  assert deid_compare.effect(elem(before), elem(after) if after else None) == expected


def test_table_with_dicognito():
  pytest.importorskip("dicognito")
  tools = {"medjax": deid_compare.run_medjax, "dicognito": deid_compare.run_dicognito}
  rows = deid_compare.compare(["CT_small.dcm"], tools)
  assert dict(rows["PatientName (0010,0010)"]["medjax"]) == {"replaced": 1}
  assert dict(rows["PatientName (0010,0010)"]["dicognito"]) == {"replaced": 1}
  n_private = sum(e.tag.is_private for e in pydicom.dcmread(get_testdata_file("CT_small.dcm")))
  assert dict(rows["(private attributes)"]["medjax"]) == {"removed": n_private}
  text = deid_compare.table(rows, tools, markdown=True)
  assert text.startswith("| attribute | medjax | dicognito | same |")
