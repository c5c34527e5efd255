"""DICOM de-identification: the PS3.15 Annex E Basic Application Level Confidentiality
Profile, with keyed UID remapping, patient pseudonyms and optional date shifting.

  from medjax.privacy import deid
  summary = deid.run("scans/", "scans_deid/", options=deid.Options(date_shift_days_max=30))

Needs pydicom (the `privacy` extra).
"""

from medjax.privacy.deid.folder import Options
from medjax.privacy.deid.folder import deidentify_folder
from medjax.privacy.deid.folder import run

__all__ = ["Options", "deidentify_folder", "run"]
