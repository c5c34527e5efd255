"""The secret key and what is derived from it: patient pseudonyms, date offsets, UIDs.

Every replacement is an HMAC-SHA256 of the original under one secret key, so the
same input gives the same output across files and runs with the same key, and
without the key the mapping cannot be recomputed (a plain hash of a Patient ID
could be reversed by hashing every plausible ID).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile

from absl import logging

from medjax.engine.errors import InputError

KEY_BYTES = 32
UID_ROOT = "2.25."  # ITU-T X.667: a UID from a 128-bit integer, no registered root needed


def _digest(key: bytes, purpose: str, value: str) -> bytes:
  return hmac.new(key, f"{purpose}\0{value}".encode("utf-8"), hashlib.sha256).digest()


def pseudonym(key: bytes, patient: str) -> str:
  """The keyed pseudonym that replaces a Patient ID (and Patient's Name)."""
  return "ANON" + _digest(key, "patient", patient).hex()[:16].upper()


def date_offset_days(key: bytes, patient: str, max_days: int) -> int:
  """A keyed per-patient shift in [-max_days, -1] or [1, max_days]; 0 if max_days is 0."""
  if max_days <= 0:
    return 0
  h = int.from_bytes(_digest(key, "dates", patient)[:8], "big") % (2 * max_days)
  return h - max_days if h < max_days else h - max_days + 1


def remap_uid(key: bytes, uid: str) -> str:
  """The replacement UID: 2.25. and 128 bits of the keyed digest of the original."""
  return UID_ROOT + str(int.from_bytes(_digest(key, "uid", uid)[:16], "big"))


def _read_key(path: str) -> bytes:
  try:
    with open(path, encoding="ascii") as f:
      text = f.read().strip()
  except (OSError, UnicodeDecodeError) as e:
    raise InputError(f"--key_file={path}: cannot read it: {e}") from None
  try:
    key = bytes.fromhex(text)
  except ValueError:
    raise InputError(f"--key_file={path}: expected {KEY_BYTES * 2} hex digits") from None
  if len(key) < 16:
    raise InputError(f"--key_file={path}: the key has {len(key)} bytes; give at least 16 "
                     f"({KEY_BYTES} are generated)")
  return key


def _write_key(path: str, key: bytes) -> None:
  """Writes the key readable by its owner only, whole or not at all."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".key_tmp_")
  try:
    with os.fdopen(fd, "w", encoding="ascii") as f:
      f.write(key.hex() + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def load_or_create_key(key_file: str | None, default_path: str) -> tuple[bytes, str]:
  """The key and where it lives: `key_file` if given (it must exist), else the file at
  `default_path` if an earlier run wrote one, else a new key written there."""
  if key_file:
    if not os.path.isfile(key_file):
      raise InputError(f"--key_file={key_file} does not exist; omit the flag to have a "
                       f"new key written to {default_path}")
    return _read_key(key_file), key_file
  if os.path.isfile(default_path):
    logging.info("using the key of an earlier run: %s", default_path)
    return _read_key(default_path), default_path
  key = secrets.token_bytes(KEY_BYTES)
  _write_key(default_path, key)
  logging.warning("wrote a new de-identification key to %s: keep it secret and do not "
                  "share it with the output; the same key gives the same pseudonyms, "
                  "UIDs and date shifts in later runs (--key_file)", default_path)
  return key, default_path
