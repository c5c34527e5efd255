"""The error raised for unreadable or inconsistent raw segmentation data."""

from collections.abc import Sequence

from medjax.engine.errors import InputError

MAX_LISTED = 20  # problems printed in full by `raise_all`; the rest are counted


class DataError(InputError):
  """Raw data is missing, unreadable or inconsistent; the message names the files."""


def raise_all(problems: Sequence[str], where: str) -> None:
  """Raises one DataError listing every problem found in `where` (none: returns).

  One problem is the message itself; several are listed one per line, the first
  MAX_LISTED in full and the rest as a count.
  """
  if not problems:
    return
  if len(problems) == 1:
    raise DataError(problems[0])
  lines = [f"{len(problems)} problems in {where}:"]
  lines += [f"  {p}" for p in problems[:MAX_LISTED]]
  if len(problems) > MAX_LISTED:
    lines.append(f"  ... and {len(problems) - MAX_LISTED} more")
  raise DataError("\n".join(lines))
