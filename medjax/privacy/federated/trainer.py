"""`SiteTrainer`: one site's EHR task (or the pooled one) on the engine's jitted step.

The task is `medjax.ehr.task.EhrTask` on the site's own split, wrapped in
`ProximalTask`; preprocessing statistics (normaliser, positive-class weight) are
fitted on that site's training stays only, as a hospital would; code models
(RETAIN) share one vocabulary, so that their embeddings can be averaged. The state, the
jitted train step and the predict function come from `medjax.engine.steps`;
`medjax.engine.local_steps.run_steps` runs a round's steps. Parameters travel as a
flat {"path/to/leaf": numpy array} dict (Flower's ArrayRecord).

Client-side DP: with `config.privacy.enabled`, each site trains with DP-SGD
(`medjax.privacy.dp`: Poisson batches of its own stays, per-example clipping,
Gaussian noise), accounted over its `rounds * local_steps` steps, so every
update a site sends is (epsilon, delta)-DP with respect to each of its stays.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile

import flax
import jax
import ml_collections
import jax.numpy as jnp
import numpy as np

from medjax.engine import local_steps
from medjax.engine import mesh as mesh_lib
from medjax.engine import steps
from medjax.engine.errors import InputError
from medjax.ehr import codes as codes_lib
from medjax.ehr import task as task_lib
from medjax.ehr.evaluation import MortalityEvaluator
from medjax.privacy.federated.proximal import ProximalTask


def flatten(params) -> dict[str, np.ndarray]:
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params), sep="/")
  return {k: np.asarray(v) for k, v in flat.items()}


def unflatten(flat: dict[str, np.ndarray]):
  return flax.traverse_util.unflatten_dict(
      {k: np.array(v, np.float32) for k, v in flat.items()}, sep="/")


class SiteTrainer:
  """Trains and evaluates `config.task` on `splits` (train / val / test indices of
  `data`). `total_steps` is the learning-rate schedule's length."""

  def __init__(self, config, data, splits, total_steps: int, vocab_indices=None):
    _check_optimizer(config.optimizer)
    self.config = config
    with tempfile.TemporaryDirectory() as prep_dir:
      if vocab_indices is not None:  # code models: one vocabulary (embedding) for all sites
        _write_shared_vocab(config.task, data, splits, vocab_indices, prep_dir)
      inner = task_lib.EhrTask(config.task, batch_size=config.batch_size, data=data,
                               splits=splits, workdir=prep_dir)
    self.task = ProximalTask(inner)
    self.num_train = int(len(splits["train"]))
    self.mesh = mesh_lib.make_mesh(config.mesh)
    self.dp = _private_training(config, inner, total_steps, self.mesh)
    self.state, self.train_step, abstract = steps.build(
        self.task, config, self.mesh, total_steps,
        grad_rule=self.dp.grad_rule() if self.dp else None)
    self._shardings = jax.tree.map(lambda a: a.sharding, abstract)
    # Under DP, the noise and the Poisson draws come from a secret of this site's:
    # the config (seed included) is sent by the server, which could otherwise
    # regenerate the noise and subtract it.
    self._secret = secrets.randbits(63) if self.dp is not None else None
    if self._secret is not None:
      rng = jax.random.PRNGKey(self._secret % (2 ** 32 - 1))
      self.state = self.state.replace(rng=jax.device_put(rng, self._shardings.rng))
    self.tx, _ = self.task.optimizer(config.optimizer, total_steps)
    self._predict = steps.make_predict_fn(self.task, self.mesh, config.compute_dtype)
    self._evaluators = {
        name: MortalityEvaluator(name, inner.examples, splits[name], inner.eval_batch_size,
                                 inner.pad_multiple)
        for name in ("val", "test") if len(splits[name])}
    self._batches = None

  def params(self) -> dict[str, np.ndarray]:
    return flatten(jax.device_get(self.state.params))

  def start_round(self, params: dict[str, np.ndarray], mu: float, step: int) -> None:
    """A federated round's start: the global parameters, a fresh optimiser state,
    the global parameters as the proximal anchor (weight `mu`), step `step`."""
    tree = unflatten(params)
    anchor = unflatten(params)  # separate buffers: the state is donated
    state = self.state.replace(
        step=jnp.asarray(step, jnp.int32), params=tree, opt_state=self.tx.init(tree),
        extra={**self.state.extra, "anchor": anchor, "mu": jnp.asarray(mu, jnp.float32)})
    self.state = jax.device_put(state, self._shardings)

  def set_params(self, params: dict[str, np.ndarray]) -> None:
    """Parameters only (for evaluation); the rest of the state is kept."""
    self.state = jax.device_put(self.state.replace(params=unflatten(params)),
                                self._shardings)

  def train(self, num_steps: int, seed: int | None = None) -> dict[str, float]:
    """`num_steps` steps; a `seed` starts a new shuffled pass over the training
    stays (each federated round), else the data continue where they stopped."""
    if self.dp is not None:  # Poisson batches of the steps the state is at
      self._batches = self.dp.train_iterator(self._secret)
      self._batches.set_state({"step": int(self.state.step)})
    elif seed is not None or self._batches is None:
      seed = self.config.seed if seed is None else seed
      self._batches = iter(self.task.train_dataset(self.config.batch_size, seed))
    self.state, metrics = local_steps.run_steps(self.train_step, self.state,
                                                self._batches, num_steps, self.mesh)
    if self.dp is not None:
      metrics["dp_epsilon"] = self.dp.epsilon(int(self.state.step))
    return metrics

  def predict(self, split: str, indices=None) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) on `split`, or on `indices` of the data set."""
    evaluator = self._evaluators[split]
    if indices is not None:
      evaluator = MortalityEvaluator(split, evaluator.examples, indices,
                                     evaluator.batch_size, evaluator.pad_multiple)
    return evaluator.predict(lambda batch: self._predict(self.state, batch))


def _write_shared_vocab(cfg, data, splits, vocab_indices, prep_dir: str) -> None:
  """The site's preprocessing with the code vocabulary of `vocab_indices` (FedAvg
  averages embeddings row by row, so every site must number the codes alike)."""
  prep = task_lib.fit_preprocessing(cfg, data, splits["train"])
  prep["vocab"] = codes_lib.build_vocab(data, vocab_indices, cfg.min_code_count)
  with open(os.path.join(prep_dir, task_lib.PREPROCESSING_FILE), "w",
            encoding="utf-8") as f:
    json.dump(prep, f)


def _private_training(config, task, total_steps: int, mesh):
  """DP-SGD of `config.privacy` for this site's `total_steps`, or None when off."""
  if not config.get("privacy") or not config.privacy.enabled:
    return None
  from medjax.privacy.dp import training  # pylint: disable=import-outside-toplevel
  site_config = ml_collections.ConfigDict(config.to_dict())
  site_config.total_steps = total_steps
  return training.PrivateTraining(site_config, task,
                                  batch_divisor=mesh_lib.batch_divisor(mesh))


def _check_optimizer(opt) -> None:
  """Each round starts a fresh optimiser state (its schedule count at 0): only a
  constant learning rate means the same thing in every round."""
  if opt.schedule != "constant" or opt.warmup_steps:
    raise InputError(
        f"config.optimizer.schedule={opt.schedule!r}, warmup_steps={opt.warmup_steps}: "
        "federated rounds restart the optimiser state, so a schedule would restart "
        "every round; use --config.optimizer.schedule=constant "
        "--config.optimizer.warmup_steps=0")
