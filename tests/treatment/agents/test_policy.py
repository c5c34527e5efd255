"""Policy distributions and squashing against scipy / numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from medjax.engine.errors import InputError
from medjax.treatment.agents import policy
from medjax.treatment.agents.networks import ActorCritic

BOX = policy.Box((0.0, -1.0), (2.0, 3.0))


def test_gaussian_log_prob_and_entropy_match_scipy():
  mean = np.array([[0.3, -1.0], [2.0, 0.5]])
  log_std = np.array([[-0.5, 0.2], [0.0, -1.0]])
  raw = np.array([[0.1, 0.4], [1.0, 0.5]])
  got = policy.log_prob(BOX, (jnp.asarray(mean), jnp.asarray(log_std)), jnp.asarray(raw))
  ref = scipy.stats.norm.logpdf(raw, mean, np.exp(log_std)).sum(-1)
  np.testing.assert_allclose(got, ref, rtol=1e-5)
  ent = policy.entropy(BOX, (jnp.asarray(mean), jnp.asarray(log_std)))
  np.testing.assert_allclose(ent, scipy.stats.norm.entropy(0, np.exp(log_std)).sum(-1),
                             rtol=1e-5)


def test_categorical_log_prob_and_entropy_match_numpy():
  logits = np.array([[1.0, 2.0, -1.0], [0.0, 0.0, 3.0]])
  space = policy.Discrete(3)
  got = policy.log_prob(space, jnp.asarray(logits), jnp.array([1, 2]))
  logp = scipy.special.log_softmax(logits, -1)
  np.testing.assert_allclose(got, [logp[0, 1], logp[1, 2]], rtol=1e-6)
  np.testing.assert_allclose(policy.entropy(space, jnp.asarray(logits)),
                             -(np.exp(logp) * logp).sum(-1), rtol=1e-6)


def test_samples_follow_the_distribution_and_report_their_log_prob():
  key = jax.random.key(0)
  mean, log_std = jnp.full((20000, 2), 0.5), jnp.full((20000, 2), np.log(0.3))
  raw, logp = policy.sample(BOX, (mean, log_std), key)
  np.testing.assert_allclose(raw.mean(0), 0.5, atol=0.01)
  np.testing.assert_allclose(raw.std(0), 0.3, atol=0.01)
  np.testing.assert_allclose(logp, policy.log_prob(BOX, (mean, log_std), raw), rtol=1e-6)
  space = policy.Discrete(3)
  logits = jnp.broadcast_to(jnp.log(jnp.array([0.2, 0.5, 0.3])), (20000, 3))
  idx, _ = policy.sample(space, logits, key)
  np.testing.assert_allclose(np.bincount(idx, minlength=3) / 20000, [0.2, 0.5, 0.3],
                             atol=0.015)


def test_squashing_maps_into_the_box():
  raw = jnp.array([[0.0, 0.0], [50.0, -50.0], [0.5, -0.5]])
  tanh = policy.to_env(BOX, raw)
  np.testing.assert_allclose(tanh[0], [1.0, 1.0], atol=1e-6)  # the box's centre
  np.testing.assert_allclose(tanh[1], [2.0, -1.0], atol=1e-6)  # saturated at the ends
  np.testing.assert_allclose(tanh[2], [1 + np.tanh(0.5), 1 + 2 * np.tanh(-0.5)],
                             rtol=1e-6)
  clip = policy.to_env(policy.Box(BOX.low, BOX.high, "clip"), raw)
  np.testing.assert_allclose(clip, [[1.0, 1.0], [2.0, -1.0], [1.5, 0.0]], atol=1e-6)
  assert policy.to_env(policy.Discrete(4), jnp.array(3)) == 3


@pytest.mark.parametrize("kwargs", [dict(low=(0.0,), high=(0.0,)),
                                    dict(low=(0.0, 1.0), high=(1.0,)),
                                    dict(low=(0.0,), high=(1.0,), squash="sigmoid")])
def test_bad_box_is_an_input_error(kwargs):
  with pytest.raises(InputError):
    policy.Box(**kwargs)


def test_actor_critic_shapes_and_initial_policy():
  obs = jnp.ones((5, 3))
  net = ActorCritic(BOX, hidden=(8,))
  params = net.init(jax.random.key(0), obs)
  (mean, log_std), value = net.apply(params, obs)
  assert mean.shape == log_std.shape == (5, 2) and value.shape == (5,)
  np.testing.assert_allclose(log_std, -0.5)
  assert float(jnp.abs(mean).max()) < 0.1  # the 0.01-gain head starts near the centre
  logits, value = ActorCritic(policy.Discrete(4), hidden=(8,)).apply(
      ActorCritic(policy.Discrete(4), hidden=(8,)).init(jax.random.key(0), obs), obs)
  assert logits.shape == (5, 4) and value.shape == (5,)
