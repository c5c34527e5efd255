"""Tiny CSVs in the MoleculeNet / DeepChem layouts (made-up labels, real SMILES)."""

import csv
import os

import numpy as np

from medjax.molecule import datasets

SMILES = ["CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CC", "c1ccncc1",
          "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "C1CCCCC1", "OC1CCCCC1", "CCCCCCCC", "Clc1ccccc1",
          "CC(=O)Nc1ccc(O)cc1", "C1CCNCC1", "c1ccc2ccccc2c1", "CCOC(=O)C", "CN1CCCC1",
          "O=C(O)c1ccccc1", "CCCl", "NCCO", "c1ccoc1", "CCS"]
BAD = "C1CC(("  # unparsable


def _write(path, header, rows):
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(header)
    w.writerows(rows)


def write_all(root, n=20, seed=0):
  """Writes ESOL, Lipophilicity, BBBP and Tox21 look-alikes (row 1 invalid) to root.

  With n = 40 every SMILES appears twice, once per BBBP class, so a scaffold split
  still sees both classes.
  """
  rng = np.random.default_rng(seed)
  os.makedirs(root, exist_ok=True)
  smiles = [SMILES[i % len(SMILES)] for i in range(n)]
  smiles[1] = BAD
  y = rng.normal(size=n).round(3)
  _write(os.path.join(root, "delaney-processed.csv"),
         ["Compound ID", "ESOL predicted log solubility in mols per litre",
          "measured log solubility in mols per litre", "smiles"],
         [[f"c{i}", 0.0, y[i], s] for i, s in enumerate(smiles)])
  _write(os.path.join(root, "Lipophilicity.csv"), ["CMPD_CHEMBLID", "exp", "smiles"],
         [[f"CHEMBL{i}", y[i], s] for i, s in enumerate(smiles)])
  _write(os.path.join(root, "BBBP.csv"), ["num", "name", "p_np", "smiles"],
         [[i + 1, f"m{i}", (i // len(SMILES)) % 2, s] for i, s in enumerate(smiles)])
  labels = rng.integers(0, 2, (n, len(datasets.TOX21_TASKS))).astype(object)
  labels[rng.random(labels.shape) < 0.3] = ""  # missing labels
  labels[0, 0], labels[2, 0] = 0, 1  # both classes in the first task
  _write(os.path.join(root, "tox21.csv"), [*datasets.TOX21_TASKS, "mol_id", "smiles"],
         [[*labels[i], f"TOX{i}", s] for i, s in enumerate(smiles)])
  return root


def write_two_task_csv(path, n=24, seed=0, missing=0.2):
  """The README's "Any CSV" layout: `smiles,y1,y2`, binary labels, some left empty
  (row 1's SMILES is invalid); both classes in each task. Returns the path."""
  rng = np.random.default_rng(seed)
  labels = (np.arange(n)[:, None] + np.array([[0, 1]])) % 2  # alternating classes
  cells = labels.astype(object)
  cells[rng.random(cells.shape) < missing] = ""
  smiles = [SMILES[i % len(SMILES)] for i in range(n)]
  smiles[1] = BAD
  _write(path, ["smiles", "y1", "y2"], [[s, *cells[i]] for i, s in enumerate(smiles)])
  return str(path)
