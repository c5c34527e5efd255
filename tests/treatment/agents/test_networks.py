"""The state-index input layer equals a dense layer on the one-hot state."""

import jax
import jax.numpy as jnp
import numpy as np

from medjax.treatment.agents.networks import MLP


def test_index_input_is_the_dense_layer_of_the_one_hot_state():
  index_net, dense_net = MLP((4, 3), num_states=6), MLP((4, 3))
  states = jnp.array([0, 5, 2, 2])
  params = index_net.init(jax.random.key(0), states)["params"]
  dense = {"dense_0": {"kernel": params["dense_0_kernel"],
                       "bias": params["dense_0_bias"] + 0.1},
           "dense_1": params["dense_1"]}
  params = {**params, "dense_0_bias": params["dense_0_bias"] + 0.1}
  np.testing.assert_allclose(
      index_net.apply({"params": params}, states),
      dense_net.apply({"params": dense}, jax.nn.one_hot(states, 6)), rtol=1e-6, atol=1e-6)
