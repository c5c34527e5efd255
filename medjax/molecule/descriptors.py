"""Molecule-level RDKit 2D descriptors, normalised on the training split."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np
from rdkit.Chem import Descriptors

from medjax.molecule import featurize

NAMES = tuple(name for name, _ in Descriptors._descList)


def compute(smiles: Sequence[str]) -> np.ndarray:
  """[molecules, len(NAMES)] float64; NaN where RDKit fails or overflows."""
  out = np.full((len(smiles), len(NAMES)), np.nan)
  for i, s in enumerate(smiles):
    mol = featurize.mol_from_smiles(s)
    if mol is None:
      continue
    values = Descriptors.CalcMolDescriptors(mol, missingVal=np.nan)
    out[i] = [values[n] for n in NAMES]
  with np.errstate(invalid="ignore", over="ignore"):
    out[~np.isfinite(out)] = np.nan
  return out


@dataclasses.dataclass
class Normalizer:
  """Winsorise to the training 0.5-99.5 percentiles, standardise, NaN -> 0."""
  low: np.ndarray
  high: np.ndarray
  mean: np.ndarray
  std: np.ndarray

  @classmethod
  def fit(cls, x: np.ndarray) -> Normalizer:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
      low, high = np.nanpercentile(x, [0.5, 99.5], axis=0)
      clipped = np.clip(x, low, high)
      mean, std = np.nanmean(clipped, axis=0), np.nanstd(clipped, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(std > 1e-8, std, 1.0)  # constant or all-NaN columns: just centred
    return cls(np.nan_to_num(low), np.nan_to_num(high), mean, std)

  def __call__(self, x: np.ndarray) -> np.ndarray:
    z = (np.clip(x, self.low, self.high) - self.mean) / self.std
    return np.nan_to_num(z, nan=0.0).astype(np.float32)

  def state(self) -> dict[str, list[float]]:
    return {k: getattr(self, k).tolist() for k in ("low", "high", "mean", "std")}

  @classmethod
  def from_state(cls, state) -> Normalizer:
    return cls(**{k: np.asarray(v) for k, v in state.items()})
