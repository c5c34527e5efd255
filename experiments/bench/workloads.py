"""Synthetic workloads for the benchmark: each task's main model with random batches.

A workload is a `Task` whose batches are random arrays of the real shapes, so the
benchmark needs no data set and imports no data pipeline (TFDS, grain).
"""

from __future__ import annotations

import numpy as np

from medjax.engine.task import Task


class SyntheticSegmentation(Task):
  """The lung CT U-Net (experiments/configs/segmentation.py:lung_ct) on 256x256 slices."""

  native_precision = True  # the U-Net's own dtype

  def __init__(self, compute_dtype="float32", size=(256, 256), preset="lung_ct"):
    from experiments.configs import segmentation as seg_configs  # pylint: disable=import-outside-toplevel
    from medjax.segmentation import losses, unet  # pylint: disable=import-outside-toplevel
    import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
    self.task_config = seg_configs.get_config(preset).task
    m = self.task_config.model
    self.model = unet.UNet(num_classes=2, features=tuple(m.features), norm=m.norm,
                           dropout=m.dropout, upsample=m.upsample,
                           dtype=jnp.dtype(compute_dtype))
    self.size, self._losses = tuple(size), losses

  def model_inputs(self, batch):
    return {"image": batch["image"]}

  def loss(self, outputs, batch):
    loss = self._losses.dice_ce(outputs, batch["label"], batch["valid"], batch["_mask"])
    return loss, {}

  def train_dataset(self, batch_size, seed, shard_index=0, shard_count=1):
    raise NotImplementedError("synthetic workloads make batches with make_batch")

  def example_batch(self, batch_size):
    return self.make_batch(batch_size, np.random.default_rng(0))

  def make_batch(self, batch_size, rng):
    return {"image": rng.random((batch_size, *self.size, 1), np.float32),
            "label": (rng.random((batch_size, *self.size)) < 0.25).astype(np.int32),
            "valid": np.ones((batch_size, *self.size), np.float32),
            "_mask": np.ones(batch_size, np.float32)}




class TaskWorkload:
  """A task's own model and a batch of its real data, repeated (molecules, EHR)."""

  def __init__(self, task, batch_size):
    self.task, self._batch_size = task, batch_size

  def __getattr__(self, name):
    return getattr(self.task, name)

  def make_batch(self, batch_size, rng):
    del rng
    if batch_size != self._batch_size:
      raise ValueError(f"this workload was built for batch {self._batch_size}")
    return self.task.example_batch(batch_size)


def dmpnn_tpsa(compute_dtype="float32", batch_size=64):
  """Chemprop's D-MPNN (hidden 300, depth 3) on RDKit's bundled NCI TPSA molecules."""
  from experiments.configs import molecule  # pylint: disable=import-outside-toplevel
  from medjax.molecule import task as molecule_task  # pylint: disable=import-outside-toplevel
  del compute_dtype  # the engine casts (steps.make_apply)
  config = molecule.get_config("quick")
  return TaskWorkload(molecule_task.MoleculeTask(config.task, batch_size), batch_size)


def grud_synthetic(compute_dtype="float32", batch_size=128):
  """GRU-D on 48 hourly bins of the synthetic ICU generator."""
  from experiments.configs import ehr  # pylint: disable=import-outside-toplevel
  from medjax.ehr import task as ehr_task  # pylint: disable=import-outside-toplevel
  del compute_dtype  # the engine casts (steps.make_apply)
  config = ehr.get_config("quick")
  config.task.model = "grud"
  return TaskWorkload(ehr_task.EhrTask(config.task, batch_size=batch_size), batch_size)


WORKLOADS = {"unet_lung_ct": SyntheticSegmentation, "dmpnn_tpsa": dmpnn_tpsa,
             "grud_synthetic": grud_synthetic}
DEFAULT_BATCH = {"unet_lung_ct": 8, "dmpnn_tpsa": 64, "grud_synthetic": 128}
