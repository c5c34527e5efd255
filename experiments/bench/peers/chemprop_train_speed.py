"""Chemprop 2.x training throughput through its own pipeline, the peer of
`experiments/bench/molecule_pipeline.py`.

`MoleculeDataset` (Chemprop v1 atom features, 133 dims, as medjax's; featurised once:
`dataset.cache = True`, the CLI's default), `build_dataloader` (shuffled, no
workers: the CLI's default) and `lightning.Trainer.fit` of an `MPNN`
(BondMessagePassing hidden 300 x depth 3, mean aggregation, a 300-unit FFN,
Chemprop's Adam + Noam schedule): Chemprop's `chemprop train` path without
validation and checkpoints. Runs in the peer venv
(experiments/bench/peers/requirements.txt):

  /work/peers/bin/python experiments/bench/peers/chemprop_train_speed.py \
      --csv=train.csv --epochs=3 --batch=50 --threads=2

`--csv` has `smiles,target` columns. Prints one JSON line: featurisation
seconds, molecules/s of the epochs after the first (warm-up), the first epoch's.
"""

from __future__ import annotations

import argparse
import csv
import json
import time


def _parse():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--csv", required=True, help="smiles,target rows (training split)")
  parser.add_argument("--epochs", type=int, default=3, help="the first is warm-up")
  parser.add_argument("--batch", type=int, default=50)
  parser.add_argument("--hidden", type=int, default=300)
  parser.add_argument("--depth", type=int, default=3)
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--seed", type=int, default=0)
  return parser.parse_args()


def _read(path):
  with open(path, encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  return [r["smiles"] for r in rows], [float(r["target"]) for r in rows]


def _epoch_clock():
  import lightning.pytorch as pl  # pylint: disable=import-outside-toplevel

  class EpochClock(pl.Callback):
    """Wall time and molecules of each training epoch."""

    def __init__(self):
      self.rows, self._start, self._molecules = [], 0.0, 0

    def on_train_epoch_start(self, trainer, module):
      self._start, self._molecules = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
      self._molecules += len(batch.Y)

    def on_train_epoch_end(self, trainer, module):
      self.rows.append((time.perf_counter() - self._start, self._molecules))

  return EpochClock()


def main():
  args = _parse()
  import lightning.pytorch as pl  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  from chemprop import data, featurizers, models, nn  # pylint: disable=import-outside-toplevel

  torch.set_num_threads(args.threads)
  pl.seed_everything(args.seed, verbose=False)
  smiles, targets = _read(args.csv)
  featurizer = featurizers.SimpleMoleculeMolGraphFeaturizer(
      atom_featurizer=featurizers.MultiHotAtomFeaturizer.v1())
  points = [data.MoleculeDatapoint.from_smi(s, np.array([y])) for s, y in zip(smiles, targets)]
  dataset = data.MoleculeDataset(points, featurizer)
  scaler = dataset.normalize_targets()
  started = time.perf_counter()
  dataset.cache = True  # featurises every molecule once, as `chemprop train` does
  featurize_seconds = time.perf_counter() - started
  loader = data.build_dataloader(dataset, args.batch, num_workers=0, seed=args.seed)
  mp = nn.BondMessagePassing(d_v=featurizer.atom_fdim, d_e=featurizer.bond_fdim,
                             d_h=args.hidden, depth=args.depth)
  ffn = nn.RegressionFFN(input_dim=args.hidden, hidden_dim=args.hidden, n_layers=1,
                         output_transform=nn.UnscaleTransform.from_standard_scaler(scaler))
  model = models.MPNN(mp, nn.MeanAggregation(), ffn, batch_norm=False)
  clock = _epoch_clock()
  trainer = pl.Trainer(max_epochs=args.epochs, accelerator="cpu", devices=1, logger=False,
                       enable_checkpointing=False, enable_progress_bar=False,
                       enable_model_summary=False, callbacks=[clock], num_sanity_val_steps=0)
  trainer.fit(model, loader)
  timed = clock.rows[1:] or clock.rows
  seconds, molecules = sum(r[0] for r in timed), sum(r[1] for r in timed)
  print(json.dumps({"impl": "chemprop", "molecules": len(smiles),
                    "featurize_seconds": round(featurize_seconds, 3),
                    "first_epoch_molecules_per_s": round(clock.rows[0][1] / clock.rows[0][0], 1),
                    "molecules_per_s": round(molecules / seconds, 1),
                    "timed_epochs": len(timed), "threads": torch.get_num_threads()}))


if __name__ == "__main__":
  main()
