"""Benchmark workloads: each task's main model on batches of its real shapes.

  unet_lung_ct_256   U-Net of the lung_ct preset (features 16-128), 256x256x1 CT slices
  dmpnn_tpsa         D-MPNN (hidden 300, depth 3) on RDKit's NCI TPSA molecules (the
                     quick preset's data; 16.4 heavy atoms on average)
  dmpnn_druglike     the same D-MPNN on the NCI molecules of 20-60 heavy atoms (26.5 on
                     average; MoleculeNet's Lipophilicity has 27.0, BBBP 24.1, Tox21 18.6)
  grud_p12_37var     GRU-D of the p12_grud preset at PhysioNet 2012 shape: 48 hourly
                     bins x 37 series + 5 static descriptors
  grud_synthetic_6var  GRU-D on the quick preset's synthetic generator (6 series)

Old names are kept as aliases (`ALIASES`). No workload needs a downloaded data set:
the U-Net and the PhysioNet-shaped GRU-D get random arrays of the real shapes (a
binned model's compute does not depend on the values or on which cells are
observed), the D-MPNNs real molecules from the file RDKit ships, packed into the
training pipeline's fixed-size blocks. Each workload's `shape(batch)` says what one
step processes; the benchmark writes it into every row.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from medjax.engine.errors import InputError
from medjax.engine.task import Task


class SyntheticSegmentation(Task):
  """The lung CT U-Net (experiments/configs/segmentation.py:lung_ct) on 256x256 slices."""

  native_precision = True  # the U-Net's own dtype

  def __init__(self, compute_dtype="float32", batch_size=8, size=(256, 256),
               preset="lung_ct"):
    del batch_size  # make_batch takes it
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

  def shape(self, batch) -> str:
    features = "-".join(str(f) for f in self.model.features)
    return f"{'x'.join(map(str, batch['image'].shape))} images, U-Net {features}"


class TaskWorkload:
  """A task's own model and one batch of its data, repeated."""

  def __init__(self, task, batch_size):
    self.task, self._batch_size = task, batch_size

  def __getattr__(self, name):
    return getattr(self.task, name)

  def make_batch(self, batch_size, rng):
    del rng
    if batch_size != self._batch_size:
      raise ValueError(f"this workload was built for batch {self._batch_size}")
    return self.task.example_batch(batch_size)


class EhrWorkload(TaskWorkload):

  def shape(self, batch) -> str:
    b, t, v = batch["values"].shape
    return (f"{b} stays x {t} bins x {v} series, "
            f"{batch['static'].shape[-1]} static features")


class MoleculeWorkload(TaskWorkload):
  """Blocks filled with training molecules in order (the task's example batch holds one)."""

  def make_batch(self, batch_size, rng):
    from medjax.molecule import batching  # pylint: disable=import-outside-toplevel
    del rng
    task = self.task
    packer = task.packer(task.graphs_for_batch(batch_size))
    ids = task.split["train"][:batch_size]
    return batching.sequential_batches(packer, ids, task.n_blocks)[0]

  def shape(self, batch) -> str:
    blocks, nodes = batch["node_mask"].shape
    real = batch["index"] >= 0
    atoms = self.task.data.store.num_atoms[batch["index"][real]]
    return (f"{int(real.sum())} molecules ({atoms.mean():.1f} heavy atoms on average) in "
            f"{blocks} blocks of {nodes} atom / {batch['edge_mask'].shape[1]} bond slots")


def _molecule_config():
  from experiments.configs import molecule  # pylint: disable=import-outside-toplevel
  return molecule.get_config("quick")


def dmpnn_tpsa(compute_dtype="float32", batch_size=64):
  """Chemprop's D-MPNN (hidden 300, depth 3) on RDKit's bundled NCI TPSA molecules."""
  from medjax.molecule import task as molecule_task  # pylint: disable=import-outside-toplevel
  del compute_dtype  # the engine casts (steps.make_apply)
  task = molecule_task.MoleculeTask(_molecule_config().task, batch_size)
  return MoleculeWorkload(task, batch_size)


def dmpnn_druglike(compute_dtype="float32", batch_size=64, atoms=(20, 60)):
  """The D-MPNN on the NCI TPSA molecules with `atoms` heavy atoms (inclusive)."""
  from medjax.molecule import graphs  # pylint: disable=import-outside-toplevel
  from medjax.molecule import task as molecule_task  # pylint: disable=import-outside-toplevel
  del compute_dtype
  config = _molecule_config()
  data = molecule_task.load_dataset(config.task)
  n = data.store.num_atoms
  keep = np.flatnonzero((n >= atoms[0]) & (n <= atoms[1]))
  data = dataclasses.replace(
      data, smiles=[data.smiles[i] for i in keep], rows=data.rows[keep],
      targets=data.targets[keep], descriptors=None,
      store=graphs.GraphStore.from_graphs([data.store.graph(i) for i in keep]))
  return MoleculeWorkload(molecule_task.MoleculeTask(config.task, batch_size, data),
                          batch_size)


def random_icu_stays(num_stays, variables, hours=48.0, observed=0.15, seed=0):
  """`IcuData` with each (hour, series) cell observed with probability `observed`, at a
  random minute, values log-normal around 1; Age, Gender, Height, ICUType, Weight."""
  from medjax.ehr.data import IcuData  # pylint: disable=import-outside-toplevel
  from medjax.ehr.physionet import STATIC  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  cells = int(hours) * len(variables)
  events = []
  for _ in range(num_stays):
    cell = np.flatnonzero(rng.random(cells) < observed)
    times = (cell // len(variables) + rng.integers(0, 60, len(cell)) / 60).astype(np.float32)
    order = np.argsort(times, kind="stable")
    events.append((times[order], (cell % len(variables))[order],
                   rng.lognormal(0.0, 0.5, len(cell)).astype(np.float32)))
  static = np.stack([rng.uniform(18, 90, num_stays), rng.integers(0, 2, num_stays),
                     rng.uniform(150, 195, num_stays), rng.integers(1, 5, num_stays),
                     rng.uniform(45, 120, num_stays)], axis=1)
  labels = (rng.random(num_stays) < 0.14).astype(np.int32)  # set-a's mortality
  return IcuData.from_events(ids=np.arange(num_stays), labels=labels, static=static,
                             static_names=STATIC, variables=variables, events=events)


def _grud(preset, batch_size, data=None):
  from experiments.configs import ehr  # pylint: disable=import-outside-toplevel
  from medjax.ehr import task as ehr_task  # pylint: disable=import-outside-toplevel
  config = ehr.get_config(preset)
  config.task.model = "grud"
  return EhrWorkload(ehr_task.EhrTask(config.task, batch_size=batch_size, data=data),
                     batch_size)


def grud_p12_37var(compute_dtype="float32", batch_size=128):
  """GRU-D of the p12_grud preset on random stays of PhysioNet 2012's 37 series."""
  from medjax.ehr.physionet import SERIES  # pylint: disable=import-outside-toplevel
  del compute_dtype  # the engine casts (steps.make_apply)
  return _grud("p12_grud", batch_size, random_icu_stays(max(2 * batch_size, 200), SERIES))


def grud_synthetic_6var(compute_dtype="float32", batch_size=128):
  """GRU-D on 48 hourly bins of the quick preset's synthetic ICU generator (6 series)."""
  del compute_dtype
  return _grud("quick", batch_size)


WORKLOADS = {"unet_lung_ct_256": SyntheticSegmentation, "dmpnn_tpsa": dmpnn_tpsa,
             "dmpnn_druglike": dmpnn_druglike, "grud_p12_37var": grud_p12_37var,
             "grud_synthetic_6var": grud_synthetic_6var}
ALIASES = {"unet_lung_ct": "unet_lung_ct_256", "grud_synthetic": "grud_synthetic_6var",
           "grud_p12": "grud_p12_37var"}
DEFAULT_BATCH = {"unet_lung_ct_256": 8, "dmpnn_tpsa": 64, "dmpnn_druglike": 64,
                 "grud_p12_37var": 128, "grud_synthetic_6var": 128}
# The README's speed table: every task at the shapes it trains on.
REAL_SHAPES = ("unet_lung_ct_256", "dmpnn_druglike", "grud_p12_37var")


def resolve(name: str) -> str:
  """The workload's name, aliases followed; InputError naming the known ones."""
  name = ALIASES.get(name, name)
  if name not in WORKLOADS:
    known = ", ".join([*WORKLOADS, *(f"{a} (= {b})" for a, b in ALIASES.items())])
    raise InputError(f"--workloads: unknown workload {name!r}; known: {known}")
  return name


def build(name: str, compute_dtype: str, batch_size: int):
  """The workload `name` (or alias) for `batch_size` examples a step."""
  return WORKLOADS[resolve(name)](compute_dtype=compute_dtype, batch_size=batch_size)
