"""The error for bad input a user can fix: a flag, a config field, a file, a row.

Experiment mains print just its message (naming the flag, file or line) and exit
with status 2; any other exception is a bug and keeps its traceback.
"""


class InputError(ValueError):
  """Bad user input; the message names the flag, config field, file or row."""
