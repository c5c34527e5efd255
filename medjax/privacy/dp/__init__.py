"""Differentially private training (DP-SGD) for any medjax task.

Turn it on with `--config.privacy.enabled=True` and a budget
(`--config.privacy.target_epsilon=3`, `delta`), see `medjax/engine/config.py`.
The engine then samples Poisson batches (`sampling`), swaps its gradient rule for
per-example clipped, noised gradients (`gradients`) and reports the epsilon spent
(`accounting`, with Google's `dp_accounting`); `training.PrivateTraining` ties
them to a config. For other loops (e.g. federated clients) the pieces stand alone:

  rule = make_grad_rule(clip_norm=1.0, noise_multiplier=1.1, expected_batch_size=64)
  (loss, aux), grads = rule(key)(loss_fn, params, batch)   # batch rows = examples
"""

from medjax.privacy.dp.accounting import calibrate_noise_multiplier, epsilon
from medjax.privacy.dp.gradients import make_grad_rule, private_value_and_grad
from medjax.privacy.dp.sampling import PoissonBatches, TrainSource
from medjax.privacy.dp.training import PrivateTraining, check_per_example_model

__all__ = ["calibrate_noise_multiplier", "epsilon", "make_grad_rule",
           "private_value_and_grad", "PoissonBatches", "TrainSource", "PrivateTraining",
           "check_per_example_model"]
