"""Process-level set-up: the runner of every main, XLA flags, multi-process start-up, logs.

`run(main)` replaces `app.run(main)`: a user's mistake (an `InputError` from a bad
flag, config field, data file or workdir) prints one `error: ...` message and exits
with status 2; any other exception is a bug and keeps its traceback. `--traceback`
or MEDJAX_TRACEBACK=1 shows the traceback of input errors too.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback

from absl import app
from absl import flags

from medjax.engine import distributed
from medjax.engine import flag_errors
from medjax.engine.errors import InputError

EXIT_INPUT_ERROR = 2
_TRACEBACK = flags.DEFINE_bool("traceback", False, "Show the traceback of input errors "
                               "(bad flags, config fields, data files) too; or set "
                               "MEDJAX_TRACEBACK=1.")

# Measured on a 2-core x86 CPU with jaxlib 0.10: about 1.8x faster 2D convolutions.
_CPU_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",)
_ACCELERATOR_PLUGINS = ("jax_cuda12_plugin", "jax_cuda13_plugin", "libtpu", "jax_rocm7_plugin")


def _has_accelerator_plugin() -> bool:
  return any(importlib.util.find_spec(name) is not None for name in _ACCELERATOR_PLUGINS)


def configure_xla(cpu_fast_conv: bool = True) -> None:
  """Adds the CPU convolution flags to XLA_FLAGS when JAX will run on the CPU.

  Must run before the first JAX computation. Skipped when a GPU/TPU plugin is
  installed, when JAX_PLATFORMS names another platform, or when disabled
  (MEDJAX_CPU_FAST_CONV=0), since XLA aborts on flags its build does not know.
  """
  if not cpu_fast_conv or os.environ.get("MEDJAX_CPU_FAST_CONV", "1") == "0":
    return
  platforms = os.environ.get("JAX_PLATFORMS", "")
  if (platforms and platforms != "cpu") or (not platforms and _has_accelerator_plugin()):
    return
  flags = os.environ.get("XLA_FLAGS", "")
  extra = [f for f in _CPU_FLAGS if f.split("=")[0] not in flags]
  os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()


class _DropLibraryInfo:
  """A logging filter that keeps library INFO chatter (orbax, grain) off the terminal,
  and TFDS' warning that a builder config is not a registered one (ours never are)."""

  _QUIET = ("orbax", "grain", "tensorstore", "etils", "tensorflow_datasets")
  _DROPPED = ("Using custom data configuration",)

  def filter(self, record) -> bool:
    if "/tensorflow_datasets/" in record.pathname and str(record.msg).startswith(
        self._DROPPED):
      return False
    if record.levelno > 20:  # WARNING and above always pass
      return True
    return not any(f"/{name}/" in record.pathname for name in self._QUIET)


def quiet_library_logs() -> None:
  """Keeps medjax's progress lines readable: library INFO logs are dropped."""
  import logging  # pylint: disable=import-outside-toplevel
  from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
  absl_logging.get_absl_handler().addFilter(_DropLibraryInfo())
  logging.getLogger("absl").addFilter(_DropLibraryInfo())


def start(argv) -> None:
  """The start of every experiment main: no stray arguments, CPU XLA flags, then
  `jax.distributed` when the launcher asks for it (see launch/), quiet library logs."""
  if len(argv) > 1:
    raise InputError(f"unexpected arguments {argv[1:]}: give options as --flag=value "
                     "(see --helpfull)")
  configure_xla()
  distributed.initialize()
  quiet_library_logs()


def wants_traceback(argv=None) -> bool:
  """Whether input errors should show their traceback (--traceback, MEDJAX_TRACEBACK=1)."""
  if os.environ.get("MEDJAX_TRACEBACK", "").lower() not in ("", "0", "false", "no"):
    return True
  if flags.FLAGS.is_parsed():
    return _TRACEBACK.value
  # Flag parsing failed: look for the flag in the command line itself.
  return any(a in ("--traceback", "-traceback", "--traceback=true", "--traceback=1")
             for a in (sys.argv if argv is None else argv))


def run(main, argv=None) -> None:
  """`app.run(main)` where a user's mistake prints `error: <message>` and exits with 2.

  Input errors are `InputError`s (bad data, workdir, config value) from `main`, and
  flag or config-field errors raised while flags are parsed (`flag_errors.parse`).
  """
  try:
    app.run(main, argv=argv, flags_parser=flag_errors.parse)
  except InputError as e:
    if wants_traceback(argv):
      traceback.print_exc()
    else:
      sys.stderr.write(f"error: {e}\n")
    sys.stderr.flush()
    sys.exit(EXIT_INPUT_ERROR)
