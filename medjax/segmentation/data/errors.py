"""The error raised for unreadable or inconsistent raw segmentation data."""

from medjax.engine.errors import InputError


class DataError(InputError):
  """Raw data is missing, unreadable or inconsistent; the message names the files."""
