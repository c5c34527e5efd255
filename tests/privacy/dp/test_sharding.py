"""The DP step on data- and FSDP-sharded meshes of 4 CPU devices = on one device."""

import os
import subprocess
import sys

import pytest

_SCRIPT = r'''
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
import jax, numpy as np, optax
from medjax.engine import mesh as mesh_lib, steps
from medjax.privacy.dp import gradients
from tests.privacy.dp.tiny import TinyTask
task = TinyTask(n=32, dim=8)
batch = task.source.batch(np.arange(10), 16)
tx, schedule = optax.adam(0.1), optax.constant_schedule(0.1)
out = []
for shape in ({"data": 1, "fsdp": 1}, {"data": 2, "fsdp": 2}, {"data": 4, "fsdp": 1}):
  n = shape["data"] * shape["fsdp"]
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:n]).reshape(shape["data"], shape["fsdp"]),
                           ("data", "fsdp"))
  state, shardings, _ = steps.create_state(task, tx, batch, mesh, seed=0)
  rule = gradients.make_grad_rule(0.5, 1.0, 10.0, microbatches=2)
  step = steps.make_train_step(task, tx, schedule, mesh, shardings, grad_rule=rule)
  for _ in range(2):
    state, _ = step(state, mesh_lib.shard_batch(batch, mesh))
  out.append(jax.device_get(state.params))
  if shape["fsdp"] == 2:
    assert "fsdp" in str(state.params["Dense_0"]["kernel"].sharding.spec)
for other in out[1:]:
  for a, b in zip(jax.tree.leaves(out[0]), jax.tree.leaves(other)):
    np.testing.assert_allclose(a, b, atol=1e-6)
print("SAME")
'''


@pytest.mark.slow  # ~10 s: a subprocess with 4 CPU devices compiling three meshes
def test_dp_step_is_the_same_on_data_and_fsdp_meshes():
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
  env = {**os.environ, "PYTHONPATH": root}
  out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, cwd=root,
                       capture_output=True, text=True, timeout=300, check=False)
  assert out.returncode == 0 and "SAME" in out.stdout, out.stderr[-3000:]
