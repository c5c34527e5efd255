"""Process-level set-up done before JAX starts: XLA flags, multi-process start-up, logging."""

from __future__ import annotations

import importlib.util
import os

from absl import app

from medjax.engine import distributed

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
  """A logging filter that keeps library INFO chatter (orbax, grain) off the terminal."""

  _QUIET = ("orbax", "grain", "tensorstore", "etils", "tensorflow_datasets")

  def filter(self, record) -> bool:
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
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  configure_xla()
  distributed.initialize()
  quiet_library_logs()
