"""Flag parsing that turns what a user typed wrong into one-line `InputError`s.

absl prints plain flag errors itself, but ml_collections' config flags fail in
ways it does not catch or words badly: a misspelled field is an AttributeError or
KeyError with a long traceback, an unknown preset is a ValueError whose message
holds a traceback, and a missing config file surfaces only when the config is
first read. `parse` (the `flags_parser` of `runtime.run`) names the flag instead.
"""

from __future__ import annotations

import difflib
import re

from absl import flags
from ml_collections import config_dict
# The module itself: `is_config_flag` is public there but not re-exported by the package.
from ml_collections.config_flags import config_flags

from medjax.engine.errors import InputError

_FLAG_MESSAGE = re.compile(r"flag --(?P<name>[^=]+)=(?P<value>.*?): (?P<reason>.*)", re.DOTALL)
_EXCEPTION_PREFIX = re.compile(r"^[A-Za-z_.]*(Error|Exception): ")


def parse(argv, flag_values: flags.FlagValues = flags.FLAGS):
  """`flag_values(argv)`; raises InputError naming the flag for any user mistake."""
  try:
    remaining = flag_values(argv)
  except flags.Error as e:
    raise InputError(flag_error_message(e, flag_values)) from e
  except (AttributeError, KeyError, OSError, TypeError) as e:
    # Raised by config flags while applying `--config.<field>` overrides.
    message = diagnose_config_flags(argv, flag_values)
    if message is None:
      raise
    raise InputError(message) from e
  for flag in _config_flags(flag_values):
    error = _load_error(flag.value)
    if error is not None:
      raise InputError(f"--{flag.name}={flag.config_filename}: cannot load the config "
                       f"file: {_last_line(str(error))}")
  return remaining


def flag_error_message(error: flags.Error, flag_values: flags.FlagValues) -> str:
  """absl's message for `error` without tracebacks, in the form `--flag=value: reason`."""
  match = _FLAG_MESSAGE.fullmatch(str(error))
  if match is None:
    return str(error)
  name, value, reason = match.group("name", "value", "reason")
  if "must have a value other than None" in reason:
    return f"--{name} is required"
  if "Traceback (most recent call last)" in reason:  # e.g. a config file's get_config()
    return f"--{name}={value}: {_last_line(reason)}"
  default = flag_values[name].default if name in flag_values else None
  if _is_config_field(name, flag_values) and isinstance(default, (bool, int, float, str)):
    kind = {bool: "true or false", int: "an integer", float: "a number",
            str: "a string"}[type(default)]
    return f"--{name}={value}: expected {kind}, got {value!r}"
  return f"--{name}={value}: {reason}"


def diagnose_config_flags(argv, flag_values: flags.FlagValues) -> str | None:
  """The message for the first config file that fails to load or `--config.<field>`
  override that names no field of its config; None when all are fine."""
  argv = flag_values.read_flags_from_files(list(argv), force_gnu=False)
  for flag in _config_flags(flag_values):
    filename = _flag_argument(argv, flag.name)
    if filename is None:
      continue
    try:
      config = flag.parser.parse(filename)
    except (TypeError, ValueError) as e:
      return f"--{flag.name}={filename}: {_last_line(str(e))}"
    error = _load_error(config)
    if error is not None:
      return f"--{flag.name}={filename}: cannot load the config file: {_last_line(str(error))}"
    for path in _override_paths(argv, flag.name):
      message = unknown_field(config, path)
      if message is not None:
        return f"--{flag.name}.{path}: {message}"
  return None


def unknown_field(config, path: str) -> str | None:
  """Why `path` (e.g. "task.model.features") names no field of `config`, or None."""
  node, done = config, []
  for key in path.split("."):
    if "[" in key:  # an indexed override: leave it to ml_collections
      return None
    if not isinstance(node, (config_dict.ConfigDict, config_dict.FrozenConfigDict)):
      return f"{'.'.join(done)} is a value ({type(node).__name__}), not a group of fields"
    if key not in node:
      rest = path.split(".")[len(done) + 1:]
      close = difflib.get_close_matches(key, list(node.keys()), n=1)
      if close:
        return f"no such config field; did you mean {'.'.join([*done, close[0], *rest])}?"
      where = ".".join(done) or "the config"
      return f"no such config field (fields of {where}: {', '.join(sorted(node.keys()))})"
    node, done = node[key], [*done, key]
  return None


def _config_flags(flag_values):
  seen = {}
  for name in flag_values:
    flag = flag_values[name]
    if config_flags.is_config_flag(flag):
      seen[flag.name] = flag
  return list(seen.values())


def _is_config_field(name: str, flag_values) -> bool:
  return any(name.startswith(f.name + ".") for f in _config_flags(flag_values))


def _flag_argument(argv, name: str) -> str | None:
  """The value given to `--name` in `argv` (`--name=v` or `--name v`), or None."""
  for i, arg in enumerate(argv):
    match = re.fullmatch(rf"--?{re.escape(name)}(=(?P<value>.*))?", arg)
    if match:
      if match.group("value") is not None:
        return match.group("value")
      return argv[i + 1] if i + 1 < len(argv) else None
  return None


def _override_paths(argv, name: str) -> list[str]:
  paths = []
  for arg in argv:
    match = re.match(rf"--?(no)?{re.escape(name)}\.([^=]+)", arg)
    if match and match.group(2) not in paths:
      paths.append(match.group(2))
  return paths


def _load_error(config) -> Exception | None:
  """The error ml_collections kept (instead of raising) for a config file it could not load."""
  if type(config).__name__ == "_ErrorConfig":
    return vars(config).get("_error", OSError("unknown error"))
  return None


def _last_line(text: str) -> str:
  lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
  return _EXCEPTION_PREFIX.sub("", lines[-1]) if lines else text
