"""Privacy tools: de-identification of DICOM files (`medjax.privacy.deid`)."""
