"""Keyed pseudonyms, UIDs and offsets: deterministic per key, different across keys."""

import os
import re
import stat

import pytest

from medjax.engine.errors import InputError
from medjax.privacy.deid import pseudonyms

K1, K2 = b"k" * 32, b"j" * 32


def test_uid_remap_is_keyed_deterministic_and_valid():
  uid = "1.2.840.113619.2.1.1.322987881.621.736170080.681"
  a = pseudonyms.remap_uid(K1, uid)
  assert a == pseudonyms.remap_uid(K1, uid)
  assert a != pseudonyms.remap_uid(K2, uid)
  assert a != pseudonyms.remap_uid(K1, uid + "1")
  assert re.fullmatch(r"2\.25\.(0|[1-9][0-9]*)", a) and len(a) <= 64
  assert int(a[5:]) < 2**128


def test_pseudonym_is_keyed_and_fits_lo():
  p = pseudonyms.pseudonym(K1, "98890234")
  assert p == pseudonyms.pseudonym(K1, "98890234") != pseudonyms.pseudonym(K2, "98890234")
  assert "98890234" not in p and len(p) <= 64


def test_date_offsets_are_in_range_and_never_zero():
  offsets = [pseudonyms.date_offset_days(K1, f"patient{i}", 10) for i in range(400)]
  assert set(offsets) == set(range(-10, 0)) | set(range(1, 11))  # all 20 values reached
  assert pseudonyms.date_offset_days(K1, "p", 0) == 0


def test_key_is_generated_private_then_reused(tmp_path):
  path = str(tmp_path / "out.deid_key")
  key, where = pseudonyms.load_or_create_key(None, path)
  assert where == path and len(key) == pseudonyms.KEY_BYTES
  assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
  assert pseudonyms.load_or_create_key(None, path)[0] == key
  assert pseudonyms.load_or_create_key(path, "unused")[0] == key


@pytest.mark.parametrize("content, message", [("not hex", "hex digits"),
                                              ("abcd", "at least 16")])
def test_bad_key_file(tmp_path, content, message):
  path = tmp_path / "k"
  path.write_text(content)
  with pytest.raises(InputError, match=message):
    pseudonyms.load_or_create_key(str(path), "unused")


def test_missing_key_file_is_refused_not_created(tmp_path):
  with pytest.raises(InputError, match="does not exist"):
    pseudonyms.load_or_create_key(str(tmp_path / "typo.key"), str(tmp_path / "d"))
  assert not (tmp_path / "d").exists()
