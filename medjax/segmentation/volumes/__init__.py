"""3D segmentation: volume readers (NIfTI, DICOM, MSD folders), geometry, plans, metrics."""
