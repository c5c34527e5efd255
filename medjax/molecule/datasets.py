"""Molecule CSV readers: a generic builder and the MoleculeNet files (DeepChem formats).

`load(spec, path)` reads a CSV, featurises every SMILES once and caches the graph
arrays as `.npz` in `cache_dir`, keyed by the file's hash and the featuriser version.
Invalid SMILES are skipped, counted and kept as `(row, smiles)` in `invalid`; `row`
is the 0-based data row of the CSV (header, comment and blank lines not counted) and
`lines[row]` its line in the file (what messages report). Empty target cells are
missing labels (NaN), counted per task by `missing_labels()`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from medjax.engine.errors import InputError
from medjax.molecule import descriptors as descriptors_lib
from medjax.molecule import featurize, graphs, table as table_lib

TASK_TYPES = ("regression", "binary", "multiclass")
TOX21_TASKS = ("NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD",
               "NR-PPAR-gamma", "SR-ARE", "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  filename: str
  smiles_column: str = "smiles"
  target_columns: tuple[str, ...] | None = None  # None: every other column
  task_type: str = "regression"
  exclude: tuple[str, ...] = ()  # columns that are neither SMILES nor targets
  column_names: tuple[str, ...] | None = None  # for files without a header
  columns_flag: str = "--config.task.target_columns"  # what a missing-column error names


MOLECULENET = {
    "esol": DatasetSpec("delaney-processed.csv",
                        target_columns=("measured log solubility in mols per litre",)),
    "freesolv": DatasetSpec("SAMPL.csv", target_columns=("expt",)),
    "lipo": DatasetSpec("Lipophilicity.csv", target_columns=("exp",)),
    "bbbp": DatasetSpec("BBBP.csv", target_columns=("p_np",), task_type="binary"),
    "tox21": DatasetSpec("tox21.csv", target_columns=TOX21_TASKS, task_type="binary"),
    "sider": DatasetSpec("sider.csv", task_type="binary"),  # 27 side-effect columns
    "clintox": DatasetSpec("clintox.csv", target_columns=("FDA_APPROVED", "CT_TOX"),
                           task_type="binary"),
    "hiv": DatasetSpec("HIV.csv", target_columns=("HIV_active",), task_type="binary"),
}
# RDKit ships 4999 NCI molecules with their topological polar surface area.
TPSA = DatasetSpec("first_5k.tpsa.csv", column_names=("smiles", "tpsa"))


def shared_data_dir() -> Path | None:
  """$MEDJAX_SHARED_DATA, the folder that holds `moleculenet/`, if set."""
  root = os.environ.get("MEDJAX_SHARED_DATA")
  return Path(root) if root else None


def default_cache_dir() -> Path:
  return Path(os.environ.get("MEDJAX_CACHE", Path.home() / ".cache" / "medjax" / "molecule"))


def tpsa_path() -> Path:
  from rdkit import RDConfig
  return Path(RDConfig.RDDataDir) / "NCI" / TPSA.filename


def resolve(name: str, data_dir: str | os.PathLike | None = None) -> tuple[DatasetSpec, Path]:
  """Spec and file of a named dataset (`tpsa` or a MoleculeNet name)."""
  if name == "tpsa":
    return TPSA, tpsa_path()
  if name not in MOLECULENET:
    raise InputError(f"--config.task.dataset={name!r}: unknown; one of tpsa, csv, "
                     f"{', '.join(MOLECULENET)}")
  spec = MOLECULENET[name]
  if data_dir:
    folder = Path(data_dir)
  elif shared_data_dir() is not None:
    folder = shared_data_dir() / "moleculenet"
  else:
    raise InputError(f"dataset {name!r}: set --config.task.data_dir (or $MEDJAX_SHARED_DATA) "
                     f"to the folder holding {spec.filename}")
  for candidate in (folder / spec.filename, folder / (spec.filename + ".gz")):
    if candidate.exists():
      return spec, candidate
  raise InputError(f"dataset {name!r}: {spec.filename}[.gz] not found in {folder} "
                   "(--config.task.data_dir)")


@dataclasses.dataclass
class MoleculeDataset:
  """The valid molecules of a CSV (aligned with `store`) and what was dropped."""
  task_type: str
  task_names: tuple[str, ...]
  smiles: list[str]
  rows: np.ndarray  # CSV data row of each valid molecule
  targets: np.ndarray  # [molecules, tasks] float64, NaN: missing
  store: graphs.GraphStore
  invalid: list[tuple[int, str]]
  descriptors: np.ndarray | None  # raw [molecules, len(descriptors.NAMES)]
  featurize_seconds: float
  from_cache: bool
  path: str = ""
  lines: np.ndarray | None = None  # [CSV data rows] file line of each data row

  def __len__(self) -> int:
    return len(self.smiles)

  def where(self, row: int) -> str:
    """'<file> line <n>' of CSV data row `row`."""
    return f"{self.path} line {int(self.lines[row])}"

  def missing_labels(self) -> dict[str, int]:
    """Per task, the valid molecules whose label is missing."""
    counts = np.isnan(self.targets).sum(0)
    return {name: int(c) for name, c in zip(self.task_names, counts)}


def read_table(spec: DatasetSpec, path: str | os.PathLike) -> table_lib.Table:
  """Every cell as a string, with the file line of each data row."""
  return table_lib.read(path, spec.column_names)


def target_columns(spec: DatasetSpec, frame: pd.DataFrame, path="") -> tuple[str, ...]:
  if spec.target_columns is not None:
    missing = [c for c in spec.target_columns if c not in frame.columns]
    if missing:
      raise InputError(f"{path}: target columns {missing} not in its columns "
                       f"{list(frame.columns)} ({spec.columns_flag})")
    return tuple(spec.target_columns)
  skip = {spec.smiles_column, *spec.exclude}
  return tuple(c for c in frame.columns if c not in skip)


def _file_hash(path) -> str:
  return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _featurize_cached(smiles, path, spec, cache_dir, with_descriptors):
  """(Featurized, descriptors or None, seconds, from_cache)."""
  key = (f"{Path(path).name}-{_file_hash(path)}-{spec.smiles_column}"
         f"-v{featurize.FEATURIZER_VERSION}")
  cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
  graph_file, desc_file = cache_dir / f"{key}.npz", cache_dir / f"{key}-rdkit2d.npz"
  start, from_cache = time.perf_counter(), graph_file.exists()
  if from_cache:
    store, extra = graphs.GraphStore.load(graph_file)
    feats = graphs.Featurized(store, extra["valid"], extra["invalid"])
  else:
    feats = graphs.featurize_many(smiles)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = graph_file.with_suffix(f".tmp{os.getpid()}.npz")
    feats.store.save(tmp, valid=feats.valid, invalid=feats.invalid)
    os.replace(tmp, graph_file)
  desc = None
  if with_descriptors:
    if desc_file.exists():
      desc = np.load(desc_file)["descriptors"]
    else:
      desc = descriptors_lib.compute([smiles[i] for i in feats.valid])
      tmp = desc_file.with_suffix(f".tmp{os.getpid()}.npz")
      np.savez_compressed(tmp, descriptors=desc)
      os.replace(tmp, desc_file)
  return feats, desc, time.perf_counter() - start, from_cache


def load(spec: DatasetSpec, path: str | os.PathLike, cache_dir=None,
         with_descriptors: bool = False, require_targets: bool = True) -> MoleculeDataset:
  """Reads, featurises (or loads the cache) and aligns targets with valid molecules."""
  if spec.task_type not in TASK_TYPES:
    raise InputError(f"--config.task.task_type={spec.task_type!r}: not one of {TASK_TYPES}")
  table = read_table(spec, path)
  frame = table.frame
  if spec.smiles_column not in frame.columns:
    raise InputError(f"{path}: SMILES column {spec.smiles_column!r} not in its columns "
                     f"{list(frame.columns)}")
  smiles = frame[spec.smiles_column].tolist()
  tasks = target_columns(spec, frame, path) if require_targets else ()
  if require_targets and not tasks:
    raise InputError(f"{path}: no target columns besides {spec.smiles_column!r}")
  values = table_lib.numeric_columns(table, tasks)
  feats, desc, seconds, from_cache = _featurize_cached(
      smiles, path, spec, cache_dir, with_descriptors)
  return MoleculeDataset(
      task_type=spec.task_type, task_names=tasks,
      smiles=[smiles[i] for i in feats.valid], rows=feats.valid,
      targets=values[feats.valid],
      store=feats.store, invalid=[(int(i), smiles[i]) for i in feats.invalid],
      descriptors=desc, featurize_seconds=seconds, from_cache=from_cache,
      path=str(path), lines=table.lines)
