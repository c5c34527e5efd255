"""Test set-up: 8 forced CPU devices, so sharded code runs as on a pod slice."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from absl import flags  # noqa: E402

# grain worker processes and absl-using code expect parsed flags.
flags.FLAGS.mark_as_parsed()
