"""The README's command lines, and the tiny fixtures and path substitutions that let
each run in a test (tests/experiments/test_readme_commands.py).

A command is every `python -m experiments.<x> ...` or `python -m launch.<x> ...`
(also `.venv/bin/python -m`, `python3 -m`) in a bash code block, continuation
lines joined, comments dropped, `&&` / `;` chains split. Paths in it are swapped:
`/path/to/<name>` for a fixture folder, and relative inputs and outputs
(`my.csv`, `new.csv`, `slices/`, `workdirs/...`) for files in the test's folder.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
from collections.abc import Callable

import numpy as np

from tests.classification.data import fixtures as cls_fixtures
from tests.ehr import fake_data
from tests.molecule import fake_moleculenet
from tests.privacy.deid import testfiles
from tests.segmentation.data import raw_fixtures
from tests.segmentation.volumes import raw_volumes

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"

_FENCE = re.compile(r"^```(?:bash|sh|shell|console)[ \t]*\n(.*?)^```", re.M | re.S)
_PYTHON = re.compile(r"^(?:\S*/)?python(?:3(?:\.\d+)?)?$")
_MODULES = ("experiments.", "launch.")
_SEPARATORS = {"&&", "||", ";", "|"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_]\w*=")

# Flags whose relative values are files the command reads or writes: they are moved
# into the test's folder (inputs must be one of INPUTS).
INPUT_FLAGS = ("--input_csv", "--input_dir", "--config.task.csv_path")
OUTPUT_FLAGS = ("--workdir", "--output_csv", "--output_dir", "--out_dir", "--feature_workdir",
                "--config.task.synthetic.workdir")
PLACEHOLDER = "/path/to/"

# Tiny overrides appended to the README commands by their cases.
_STEPS = ("--config.total_steps=2", "--config.eval_every=0",
          "--config.optimizer.warmup_steps=0", "--config.async_checkpoints=False")
SEGMENTATION = (*_STEPS, "--config.batch_size=2", "--config.task.model.features=(4,8)",
                "--config.task.eval_batch_size=2")
MOLECULE = (*_STEPS, "--config.task.epochs=0", "--config.batch_size=8", "--config.task.hidden=16",
            "--config.task.head_hidden=16", "--config.task.depth=2")
EHR_OVERRIDES = ("total_steps=2", "eval_every=0", "optimizer.warmup_steps=0",
                 "async_checkpoints=False", "batch_size=8", "task.hidden=8",
                 "task.embed_dim=8", "task.pad_multiple=8", "task.synthetic_stays=80")
EHR = tuple(f"--config.{o}" for o in EHR_OVERRIDES)
RUN_FILES = ("metrics.json", "metrics.jsonl", "learning_curves.png")
CLASSIFICATION = (*_STEPS, "--config.batch_size=8", "--config.task.eval_batch_size=4",
                  "--config.task.bootstrap=20", "--config.task.model.kwargs.width=0.125")
SMALL_2D = ("--config.task.builder.size=(16,16)", "--config.task.builder.val_fraction=0.3")
CLS = r"^experiments\.classification .*classification\.py:"
CLS_FILES = ("roc_val.png", "calibration_val.png", "predictions_val.csv", "report_val.json",
             "thresholds.json", "classification.json")
VOLUMES = (*SEGMENTATION, "--config.task.patch_size=(8,8,8)",
           "--config.task.volume.val_fraction=0.34")


EXPLAIN = ("--config.explain.examples=2", "--config.explain.ig_steps=4",
           "--config.explain.smoothgrad_samples=2", "--config.explain.faithfulness_steps=4",
           "--config.explain.random_seeds=1")
EXPLAIN_FILES = (("--workdir", "explain/checks.json"),)
SEG_TINY = (*SEGMENTATION, *(f"--config.task.builder.{k}" for k in ("num_train=8", "num_val=4",
                                                                      "size=32")))
GAN_TINY = ("--config.total_steps=2", "--config.eval_every=0", "--config.checkpoint_every=2",
            *(f"--config.task.data.builder.{k}" for k in ("num_train=8", "num_val=4", "size=32")))


def extract(markdown: str) -> list[list[str]]:
  """argv after `python -m` (module first) of each command in the bash blocks."""
  commands = []
  for block in _FENCE.findall(markdown):
    for line in re.sub(r"\\\n", " ", block).splitlines():
      tokens = shlex.split(line.lstrip("$ "), comments=True)
      segment = []
      for token in [*tokens, ";"]:
        if token not in _SEPARATORS:
          segment.append(token)
          continue
        while segment and _ASSIGNMENT.match(segment[0]):  # VAR=value python -m ...
          segment.pop(0)
        if (len(segment) > 2 and _PYTHON.match(segment[0]) and segment[1] == "-m"
            and segment[2].startswith(_MODULES)):
          commands.append(segment[2:])
        segment = []
  return commands


def readme_commands() -> list[list[str]]:
  return extract(README.read_text(encoding="utf-8"))


def flag_value(argv: list[str], flag: str) -> str | None:
  """The last `flag=value` of argv (absl: the last one wins)."""
  values = [a.split("=", 1)[1] for a in argv if a.startswith(flag + "=")]
  return values[-1] if values else None


# ----- fixtures ----------------------------------------------------------------------


def _write_ehr_root(root: pathlib.Path):
  """PhysioNet set-a / set-b (with their Outcomes files) and MIMIC-III demo tables."""
  (root / "physionet2012").mkdir(parents=True)
  fake_data.write_physionet_set(root / "physionet2012", "a", 40, seed=0)
  fake_data.write_physionet_set(root / "physionet2012", "b", 12, seed=1)
  (root / "mimic3_demo").mkdir()
  fake_data.write_mimic_tables(root / "mimic3_demo")


def _slices(path: pathlib.Path):
  """Two raw-HU TIFF slices (sizes differ) to segment."""
  raw_fixtures.write_tif(str(path / "a.tif"), np.full((40, 36), -900, np.int16))
  raw_fixtures.write_tif(str(path / "b.tif"), np.full((32, 32), 40, np.int16))


def _scans(path: pathlib.Path):
  """One NIfTI volume (the first phantom case's image) to segment."""
  source = path.parent / f"{path.name}_source"
  raw_volumes.write_msd(source, cases=1)
  path.mkdir(parents=True, exist_ok=True)
  (source / "imagesTr" / "case_000.nii.gz").rename(path / "scan.nii.gz")


def _dicom_folder(path: pathlib.Path):
  """pydicom's CT and MR test files, and a file that is not DICOM."""
  testfiles.copy(path, "CT_small.dcm", "MR_small.dcm")
  (path / "notes.txt").write_text("not a DICOM file\n")


def _new_smiles(path: pathlib.Path):
  path.write_text("smiles\nCCO\nC1CC((\nc1ccccc1\nCCN(CC)CC\n")


# `/path/to/<name>` -> (folder under fixtures/, writer of that folder or None when
# another writer makes it).
PLACEHOLDERS: dict[str, tuple[str, Callable | None]] = {
    "lung_ct_2d": ("lung_ct_2d", lambda p: raw_fixtures.write_lung(str(p), size=(32, 32))),
    "DRIVE": ("DRIVE", lambda p: raw_fixtures.write_drive(
        str(p), train_ids=(21, 22, 37), test_ids=(), size=(40, 36))),
    "folder": ("folder", lambda p: raw_fixtures.write_folder(str(p))),
    "moleculenet": ("moleculenet", lambda p: fake_moleculenet.write_all(str(p), n=40)),
    "data": ("data", _write_ehr_root),
    "set-b": ("data/physionet2012/set-b", None),
    "dicom": ("dicom", lambda p: _dicom_folder(p)),
    "Task04_Hippocampus": ("Task04_Hippocampus", lambda p: raw_volumes.write_msd(p, cases=3)),
    "chest_xray_pneumonia_224": ("chest_xray_pneumonia_224",
                                 lambda p: cls_fixtures.write_image_folder(p, size=(20, 20))),
    "adrenalmnist3d_trainval.npz": ("adrenalmnist3d_trainval.npz", lambda p: cls_fixtures.write_npz(
        p, spatial=(8, 8, 8), counts=(("train", 8), ("val", 4)))),
    "train.csv": ("chexpert/train.csv", lambda p: cls_fixtures.write_chexpert_csv(p, n=10)),
}
# Relative input paths the README names -> writer (in the test's working folder).
INPUTS: dict[str, Callable] = {
    "my.csv": lambda p: fake_moleculenet.write_two_task_csv(p, n=80),
    "new.csv": _new_smiles,
    "slices/": lambda p: _slices(p),
    "scans/": lambda p: _scans(p),
    "xrays/": lambda p: cls_fixtures.write_flat_images(p, n=3),
}


class Sandbox:
  """A folder with every fixture, where commands' paths are redirected."""

  def __init__(self, root: pathlib.Path):
    self.root, self.cwd, self.fixtures = root, root / "cwd", root / "fixtures"
    self.cwd.mkdir(parents=True)
    for folder, writer in PLACEHOLDERS.values():
      if writer is not None:
        writer(self.fixtures / folder)
    for name, writer in INPUTS.items():
      writer(self.cwd / name)
    self.home = root / "home"
    self.home.mkdir()

  def env(self) -> dict[str, str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu", HOME=str(self.home),
               MEDJAX_DATA_DIR=str(self.root / "tfds"),
               MEDJAX_CACHE=str(self.root / "molecule_cache"), PYTHONUNBUFFERED="1")
    env.pop("MEDJAX_SHARED_DATA", None)  # only the fixtures
    env.pop("XLA_FLAGS", None)
    return env

  def substitute(self, argv: list[str]) -> list[str]:
    """argv with placeholders and relative inputs / outputs moved into the sandbox."""
    return [self._token(token) for token in argv]

  def _token(self, token: str) -> str:
    if not token.startswith("--") or "=" not in token:
      return token
    flag, value = token.split("=", 1)
    if value.startswith(PLACEHOLDER):
      name = value[len(PLACEHOLDER):].rstrip("/")
      root, _, rest = name.partition("/")  # /path/to/DRIVE/training/images: inside DRIVE
      if name not in PLACEHOLDERS and root not in PLACEHOLDERS:
        raise LookupError(f"README path {value}: no fixture for it in PLACEHOLDERS "
                          f"({__file__})")
      if name in PLACEHOLDERS:
        return f"{flag}={self.fixtures / PLACEHOLDERS[name][0]}"
      return f"{flag}={self.fixtures / PLACEHOLDERS[root][0] / rest}"
    if os.path.isabs(value):
      return token
    if flag in INPUT_FLAGS:
      if value not in INPUTS:
        raise LookupError(f"README input {token}: no fixture for it in INPUTS ({__file__})")
      return f"{flag}={self.cwd / value}"
    if flag in OUTPUT_FLAGS:
      return f"{flag}={self.cwd / value}"
    return token
