"""Trainer config fields shared by every task.

Experiment config files (`experiments/configs/<task>.py`) start from `base_config()`,
add a `task` section and override what they need; every field can then be
overridden by flag (`--config.batch_size=16`). An unknown field is an error.
"""

import ml_collections

from medjax.engine import partitioning


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.batch_size = 8  # global, over all devices and processes
  c.total_steps = 1000
  c.optimizer = ml_collections.ConfigDict(dict(
      name="adamw",  # adamw | adam | sgd
      learning_rate=1e-3,
      weight_decay=1e-4,
      momentum=0.9,  # sgd only
      schedule="cosine",  # cosine | constant
      warmup_steps=0,
      grad_clip_norm=0.0,  # 0: no clipping
  ))
  c.log_every = 50
  c.eval_every = 500  # 0: evaluate only at the end
  c.checkpoint_every = 500
  c.keep_checkpoints = 3
  c.best_metric = ""  # e.g. "val/dice": also keep the best checkpoint by this metric
  c.best_mode = "max"
  c.async_checkpoints = True
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1))  # -1: all remaining devices
  # (logical axis, mesh axis or None) in priority order: parameters and optimiser
  # state are sharded by these (see medjax/engine/partitioning.py). With
  # mesh.fsdp == 1 everything is replicated.
  c.logical_axis_rules = partitioning.DEFAULT_RULES
  c.compute_dtype = "float32"  # float32 | bfloat16 (activations; parameters stay float32)
  # --mode=explain of every experiment (medjax/explain): attributions of chosen examples,
  # their figures and explain/checks.json (IG completeness, randomisation, deletion/insertion).
  c.explain = ml_collections.ConfigDict(dict(
      method="integrated_gradients",  # gradients | grad_x_input | smoothgrad |
      # integrated_gradients | occlusion | gradcam
      split="val",  # the split whose examples are explained
      examples=4,  # how many (the first of the split, or `indices`)
      indices=(),  # positions in the split to explain instead
      target=-1,  # class / output explained; -1: the predicted (or the task's default)
      ig_steps=64,
      smoothgrad_samples=16,
      occlusion_patch=8,  # edge of the occlusion window, in pixels / voxels / steps
      faithfulness_steps=20,
      random_seeds=5,
      seed=1,  # key of the re-initialised model and of the random orderings
  ))
  # Differentially private training, DP-SGD (medjax/privacy/dp): Poisson batches
  # with `batch_size` examples expected, per-example clipping, Gaussian noise.
  c.privacy = ml_collections.ConfigDict(dict(
      enabled=False,
      clip_norm=1.0,  # C: each example's gradient is scaled to L2 norm <= C
      noise_multiplier=0.0,  # sigma (noise std sigma*C); 0: calibrated to target_epsilon
      target_epsilon=0.0,  # budget for total_steps; a run that would spend more is refused
      delta=1e-5,  # must be < 1 / (training examples)
      sampling="poisson",  # each example joins each step with q = batch_size / N
      capacity=0,  # rows per step (padded, masked); 0: auto, truncation negligible
      microbatches=1,  # gradient accumulation: rows processed in this many lax.scan chunks
      accountant="rdp",  # rdp (fast) | pld (tighter, slower); both via dp_accounting
  ))
  c.task = ml_collections.ConfigDict()
  return c
