"""Flower's FedAvg / FedProx aggregation of our clients' replies, against numpy."""

import types

import numpy as np
import pytest
from flwr.app import MetricRecord, RecordDict

from medjax.engine.errors import InputError

from medjax.privacy.federated import server
from medjax.privacy.federated.client import from_arrays, to_arrays


def _reply(params, num_examples):
  """A client's train reply as the strategy reads it (a real `Message` needs a run)."""
  content = RecordDict({"arrays": to_arrays(params),
                        "metrics": MetricRecord({"num-examples": num_examples})})
  return types.SimpleNamespace(content=content, has_error=lambda: False)


def _clients(seed=0):
  rng = np.random.default_rng(seed)
  counts = [13, 120, 57]
  params = [{"gru/kernel": rng.normal(size=(4, 3)).astype(np.float32),
             "head/bias": rng.normal(size=(1,)).astype(np.float32)} for _ in counts]
  return params, counts


def _aggregate(strategy, params, counts):
  arrays, _ = strategy.aggregate_train(1, [_reply(p, n) for p, n in zip(params, counts)])
  return from_arrays(arrays)


def test_fedavg_is_the_example_weighted_mean():
  params, counts = _clients()
  got = _aggregate(server.make_strategy("fedavg", 0.0, 3), params, counts)
  w = np.array(counts, np.float64) / sum(counts)
  for key in params[0]:
    expected = np.tensordot(w, np.stack([p[key] for p in params]), axes=1)
    np.testing.assert_allclose(got[key], expected, rtol=1e-5, atol=1e-7)  # float32 sums


def test_fedprox_aggregates_like_fedavg_and_sends_mu():
  params, counts = _clients(1)
  avg = _aggregate(server.make_strategy("fedavg", 0.0, 3), params, counts)
  prox_strategy = server.make_strategy("fedprox", 0.0, 3)
  prox = _aggregate(prox_strategy, params, counts)
  for key in avg:
    np.testing.assert_array_equal(avg[key], prox[key])
  assert prox_strategy.proximal_mu == 0.0
  assert server.make_strategy("fedprox", 0.25, 3).proximal_mu == 0.25


def test_unknown_mode_is_an_input_error():
  with pytest.raises(InputError, match="federated mode 'fedsgd'"):
    server.make_strategy("fedsgd", 0.0, 2)
