"""The error raised for unreadable or inconsistent raw segmentation data."""


class DataError(ValueError):
  """Raw data is missing, unreadable or inconsistent; the message names the files."""
