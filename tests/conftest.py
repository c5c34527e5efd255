"""Test set-up: 8 forced CPU devices, so sharded code runs as on a pod slice."""

import os
import pathlib

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# The shared development data, when it lies beside the checkout (../shared/data);
# tests that need it skip when $MEDJAX_SHARED_DATA is unset or lacks it.
_SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
if "MEDJAX_SHARED_DATA" not in os.environ and _SHARED.is_dir():
  os.environ["MEDJAX_SHARED_DATA"] = str(_SHARED)

from absl import flags  # noqa: E402

# grain worker processes and absl-using code expect parsed flags.
flags.FLAGS.mark_as_parsed()
