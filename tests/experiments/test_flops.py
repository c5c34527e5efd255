"""Jaxpr FLOP counts against hand-computed values."""

import jax
import jax.numpy as jnp

from experiments.bench import flops


def test_batched_matmul():
  a, b = jnp.ones((3, 4, 5)), jnp.ones((3, 5, 6))
  assert flops.count(lambda a, b: jnp.einsum("bij,bjk->bik", a, b), a, b) == 2 * 3 * 4 * 5 * 6


def test_scan_body_counts_once_per_step():
  def rnn(h, xs, w):
    return jax.lax.scan(lambda h, x: (jnp.tanh(h @ w + x), None), h, xs)[0]
  n = flops.count(rnn, jnp.ones((2, 8)), jnp.ones((10, 2, 8)), jnp.ones((8, 8)))
  assert n == 10 * (2 * 2 * 8 * 8)


def test_convolution_and_its_gradient():
  x, k = jnp.ones((1, 16, 16, 3)), jnp.ones((3, 3, 3, 8))

  def conv(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
  forward = 2 * 16 * 16 * 8 * (3 * 3 * 3)
  assert flops.count(conv, x, k) == forward
  # Forward, input gradient and kernel gradient: three convolutions of equal cost.
  grads = jax.grad(lambda x, k: conv(x, k).sum(), argnums=(0, 1))
  assert flops.count(jax.jit(grads), x, k) == 3 * forward


def test_cond_counts_its_costliest_branch():
  w = jnp.ones((4, 4))
  f = lambda p, x: jax.lax.cond(p, lambda x: x @ w @ w, lambda x: x @ w, x)
  assert flops.count(f, True, jnp.ones((2, 4))) == 2 * (2 * 2 * 4 * 4)
