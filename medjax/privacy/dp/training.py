"""`config.privacy` for one training run: checks, calibration, sampler, accountant.

The trainer (`medjax.engine.train`) builds a `PrivateTraining` before anything is
trained when `config.privacy.enabled`; every check below raises `InputError`
naming the config field, so a bad setting never starts a (non-private) run.

* q = config.batch_size / N (N: `len(task.train_source())`): `batch_size` is the
  *expected* batch size; steps run `privacy.capacity` rows (padding masked).
* sigma = `privacy.noise_multiplier`, or calibrated so that `config.total_steps`
  steps spend `privacy.target_epsilon` at `privacy.delta`. With a target, a run
  whose total steps would spend more is refused.
* The accountant's state is a function of the step (sigma, q, capacity fixed), so a
  resumed run continues from its checkpoint's step. `<workdir>/privacy.json`
  records the mechanism; resuming with a different one is refused.
"""

from __future__ import annotations

import json
import math
import os

import jax
import numpy as np
from absl import logging

from medjax.engine.errors import InputError
from medjax.privacy.dp import accounting, gradients, sampling

LEDGER_FILE = "privacy.json"
_SIGMA_TOL = 1e-3  # calibration tolerance: a recalibrated sigma this close is the same
_EXAMPLE_MIXING = ("batch_stats",)  # model_state collections computed across examples


def check_per_example_model(task, seed: int = 0) -> None:
  """Refuses models whose layers mix the examples of a batch (BatchNorm)."""
  batch = {k: v for k, v in task.example_batch(1).items()
           if np.asarray(v).dtype.kind in "biuf"}
  key = jax.random.PRNGKey(seed)
  variables = jax.eval_shape(lambda: task.model.init(
      {"params": key, "dropout": key}, **task.model_inputs(batch), train=False))
  for collection in variables:
    if collection == "params":
      continue
    paths = sorted({"/".join(str(getattr(k, "key", k)) for k in path[:-1])
                    for path, _ in jax.tree_util.tree_leaves_with_path(variables[collection])})
    layers = ", ".join(paths[:6]) + (" ..." if len(paths) > 6 else "")
    if collection in _EXAMPLE_MIXING:
      raise InputError(
          f"config.privacy.enabled: {type(task.model).__name__} has BatchNorm layers "
          f"({layers}): batch statistics mix the examples of a batch, so per-example "
          "clipping would not bound one example's influence (not private). Use a "
          "per-example normalisation, e.g. --config.task.norm=group (or instance / none)")
    raise InputError(
        f"config.privacy.enabled: {type(task.model).__name__} keeps the non-parameter "
        f"collection {collection!r} ({layers}), which DP-SGD cannot privatise; use a "
        "model without it")


def _positive(p, name):
  if not p[name] > 0:
    raise InputError(f"config.privacy.{name}={p[name]} must be > 0")


class PrivateTraining:
  """See the module docstring. `batch_divisor`: devices on the mesh's batch axes."""

  def __init__(self, config, task, workdir: str = "", batch_divisor: int = 1):
    p = config.privacy
    self.config, self.privacy = config, p
    if p.sampling != "poisson":
      raise InputError(f"config.privacy.sampling={p.sampling!r}: only 'poisson' (the "
                       "sampling the accountant assumes)")
    if p.accountant not in accounting.ACCOUNTANTS:
      raise InputError(f"config.privacy.accountant={p.accountant!r}: one of "
                       f"{' | '.join(accounting.ACCOUNTANTS)}")
    _positive(p, "clip_norm")
    if p.microbatches < 1:
      raise InputError(f"config.privacy.microbatches={p.microbatches} must be >= 1")
    if not callable(getattr(type(task), "train_source", None)):  # absent, or a property
      raise InputError(f"config.privacy.enabled: {type(task).__name__} has no "
                       "train_source() (random access to its training examples as "
                       "padded batches), which Poisson sampling needs; DP-SGD runs the "
                       "EHR and molecule tasks")
    self.source = task.train_source()
    self.n = len(self.source)
    self.q = config.batch_size / max(self.n, 1)
    self._check_budget_fields()
    check_per_example_model(task, config.seed)
    self.multiple = batch_divisor * p.microbatches
    self.noise_multiplier, self.capacity = self._mechanism()
    self.total_epsilon = self.epsilon(config.total_steps)
    self._check_spend()
    if workdir:
      self._check_ledger(workdir)
    logging.info("DP-SGD: N=%d, q=%.4g (expected batch %d, capacity %d), clip %.4g, "
                 "noise multiplier %.4f, epsilon %.4g at delta %g after %d steps (%s)",
                 self.n, self.q, config.batch_size, self.capacity, p.clip_norm,
                 self.noise_multiplier, self.total_epsilon, p.delta, config.total_steps,
                 p.accountant)

  def _check_budget_fields(self):
    p = self.privacy
    if self.n < 1:
      raise InputError("config.privacy.enabled: the task has no training examples")
    if not 0 < self.q <= 1:
      raise InputError(f"config.batch_size={self.config.batch_size} (the expected Poisson "
                       f"batch size) must be between 1 and the {self.n} training examples")
    if not 0 < p.delta < 1.0 / self.n:
      raise InputError(f"config.privacy.delta={p.delta:g} must be in (0, 1/N) = "
                       f"(0, {1.0 / self.n:.3g}) for the N={self.n} training examples")
    if p.noise_multiplier < 0:
      raise InputError(f"config.privacy.noise_multiplier={p.noise_multiplier} must be >= 0")
    if p.target_epsilon < 0 or p.target_epsilon == 0 and not p.noise_multiplier:
      raise InputError(f"config.privacy.target_epsilon={p.target_epsilon}: set a target "
                       "epsilon > 0 (or a config.privacy.noise_multiplier > 0)")

  def _mechanism(self):
    """(sigma, capacity): given or calibrated; capacity auto or checked."""
    p, steps = self.privacy, self.config.total_steps
    capacity = p.capacity
    if capacity and capacity % self.multiple:
      raise InputError(f"config.privacy.capacity={capacity} must be a multiple of "
                       f"{self.multiple} (batch devices x microbatches)")
    if p.accountant == "pld" and not capacity:  # calibrate against the auto capacity
      capacity = accounting.auto_capacity(self.n, self.q, steps, p.delta,
                                          p.target_epsilon or 10.0, self.multiple)
    sigma = p.noise_multiplier or self._calibrate(capacity)
    if not capacity:
      bound = max(p.target_epsilon, self._epsilon(sigma, steps, 0))
      capacity = accounting.auto_capacity(self.n, self.q, steps, p.delta, bound,
                                          self.multiple)
    return float(sigma), int(capacity)

  def _calibrate(self, capacity):
    p = self.privacy
    try:
      return accounting.calibrate_noise_multiplier(
          p.target_epsilon, self.q, self.config.total_steps, p.delta, p.accountant,
          self.n, capacity)
    except accounting.CalibrationError as e:
      raise InputError(f"config.privacy.target_epsilon={p.target_epsilon}: unreachable: "
                       f"{e}. Raise the target, or lower config.total_steps or "
                       "config.batch_size") from None

  def _epsilon(self, sigma, steps, capacity):
    p = self.privacy
    return accounting.epsilon(sigma, self.q, int(steps), p.delta, p.accountant, self.n,
                              capacity)

  def epsilon(self, step: int) -> float:
    """Epsilon spent after `step` steps (the accountant state is a function of it)."""
    return self._epsilon(self.noise_multiplier, step, self.capacity)

  def _check_spend(self):
    p, steps = self.privacy, self.config.total_steps
    if p.target_epsilon and self.total_epsilon > p.target_epsilon * (1 + 1e-9):
      raise InputError(
          f"config.total_steps={steps} would spend epsilon={self.total_epsilon:.4g} > "
          f"config.privacy.target_epsilon={p.target_epsilon} (noise multiplier "
          f"{self.noise_multiplier:.4g}); training refuses to go past the budget: lower "
          "total_steps, raise noise_multiplier or set noise_multiplier=0 to calibrate")
    if p.accountant == "rdp":
      slack = accounting.truncation_slack(self.n, self.q, self.capacity, steps,
                                          self.total_epsilon)
      if slack > accounting.TRUNCATION_SHARE * p.delta:
        need = accounting.auto_capacity(self.n, self.q, steps, p.delta, self.total_epsilon,
                                        self.multiple)
        raise InputError(f"config.privacy.capacity={self.capacity} truncates Poisson "
                         f"batches too often for delta={p.delta:g}: use >= {need} (or 0: "
                         "auto, or accountant=pld)")

  def ledger(self) -> dict:
    p = self.privacy
    return {"noise_multiplier": self.noise_multiplier, "sampling_probability": self.q,
            "dataset_size": self.n, "capacity": self.capacity, "clip_norm": p.clip_norm,
            "delta": p.delta, "accountant": p.accountant, "sampling": p.sampling}

  def _check_ledger(self, workdir):
    path = os.path.join(workdir, LEDGER_FILE)
    mine = self.ledger()
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        stored = json.load(f)
      if self.privacy.noise_multiplier == 0 and math.isclose(
          stored.get("noise_multiplier", -1), self.noise_multiplier, rel_tol=_SIGMA_TOL):
        # Recalibrated for the same budget: keep the sigma the run was trained with.
        self.noise_multiplier = float(stored["noise_multiplier"])
        self.total_epsilon = self.epsilon(self.config.total_steps)
        self._check_spend()
        mine = self.ledger()
      changed = {k: (stored.get(k), v) for k, v in mine.items()
                 if not _same(stored.get(k), v)}
      if changed:
        raise InputError(
            f"{path}: this workdir was trained with another DP mechanism "
            f"({', '.join(f'{k}: {a} -> {b}' for k, (a, b) in changed.items())}); the "
            "accountant cannot resume across it. Use a fresh --workdir, or the same "
            "config.privacy (noise_multiplier pins sigma when total_steps changes)")
    elif jax.process_index() == 0:
      os.makedirs(workdir, exist_ok=True)
      with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(mine, f, indent=1)
      os.replace(path + ".tmp", path)

  # -- what the trainer uses -------------------------------------------------------

  def grad_rule(self):
    return gradients.make_grad_rule(self.privacy.clip_norm, self.noise_multiplier,
                                    self.config.batch_size, self.privacy.microbatches)

  def train_iterator(self, seed: int, shard_index: int = 0, shard_count: int = 1):
    return sampling.PoissonBatches(self.source, self.q, self.capacity, seed, shard_index,
                                   shard_count)

  def scalars(self, step: int) -> dict[str, float]:
    return {"train/dp_epsilon": self.epsilon(step)}

  def summary(self, step: int) -> dict:
    return {**self.ledger(), "epsilon": self.epsilon(step), "steps": int(step),
            "target_epsilon": self.privacy.target_epsilon,
            "expected_batch_size": self.config.batch_size,
            "microbatches": self.privacy.microbatches}


def _same(a, b) -> bool:
  if isinstance(b, float) and isinstance(a, (int, float)):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
  return a == b
