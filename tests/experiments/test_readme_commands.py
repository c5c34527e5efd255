"""Every command line the README documents runs, on tiny fixtures.

Each README command (readme_commands.extract) is matched by exactly one CASE, which
appends tiny overrides (steps, model sizes; `--dry_run` for launchers) and names the
files the run must leave. A command no case matches fails `test_every_readme_command
_has_a_case`, so a newly documented command cannot go untested: add a Case for it.

Each run is a subprocess (`sys.executable -m ...`, repository root as working
directory, JAX on the CPU, data caches and HOME in a temporary folder). Commands
that another test already runs end to end are marked slow; run them with
`-m slow`. Predict / evaluate commands first run the command that trains their
workdir (`needs`).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import subprocess
import sys
import time
from collections.abc import Callable

import pandas as pd
import pytest

from medjax.molecule import featurize
from tests.experiments import readme_commands as rc
from tests.experiments.readme_commands import (  # each case's tiny overrides
    SEGMENTATION, MOLECULE, EHR_OVERRIDES, EHR, RUN_FILES, CLASSIFICATION,
    SMALL_2D, CLS, CLS_FILES, VOLUMES, EXPLAIN, EXPLAIN_FILES, SEG_TINY, GAN_TINY)
from tests.molecule import fake_moleculenet



@dataclasses.dataclass(frozen=True)
class Case:
  name: str
  pattern: str  # regex searched in the command (module first, space-joined)
  exclude: str = ""  # regex the command must not match
  extra: tuple[str, ...] = ()  # appended flags (the last of a flag wins)
  outputs: tuple[tuple[str, str], ...] = ()  # (flag, file under the flag's value)
  slow: bool = True
  needs: str = ""  # the case whose command makes this one's workdir
  rewrite: Callable[[list[str], rc.Sandbox], list[str]] | None = None
  check: Callable[[list[str], str], None] | None = None  # (argv, stdout)


def _dry_run(argv, sandbox):
  """`--dry_run` before the launcher's `--`."""
  del sandbox
  cut = argv.index("--")
  return [*argv[:cut], "--dry_run", *argv[cut:]]


def _compare_tiny(argv, sandbox):
  """One seed; every variant's runs made tiny (they are the experiment's own command)."""
  cache = f"task.cache_dir={sandbox.root / 'ehr_cache'}"
  out = [a for a in argv if not a.startswith("--seeds=")] + ["--seeds=0"]
  return [f"{a},{','.join(EHR_OVERRIDES)},{cache}" if a.startswith("--variants=") else a
          for a in out]


def _check_any_csv(argv, stdout):
  """The example that crashed: the best checkpoint is chosen on validation ROC-AUC."""
  del stdout
  workdir = pathlib.Path(rc.flag_value(argv, "--workdir"))
  saved = json.loads((workdir / "config.json").read_text())
  assert (saved["best_metric"], saved["best_mode"]) == ("val/roc_auc", "max")
  metrics = json.loads((workdir / "metrics.json").read_text())
  assert "best_step" in metrics and "val/roc_auc" in metrics["best"]
  invalid = pd.read_csv(workdir / "invalid_smiles.csv", keep_default_na=False)
  assert invalid.to_dict("list") == {"line": [3], "row": [1], "smiles": [fake_moleculenet.BAD]}
  labels = pd.read_csv(rc.flag_value(argv, "--config.task.csv_path"), dtype=str,
                       keep_default_na=False).drop(index=1)  # row 1: invalid SMILES
  counts = pd.read_csv(workdir / "labels.csv")
  assert counts["missing"].tolist() == [int((labels[c] == "").sum()) for c in ("y1", "y2")]


def _check_rows(argv, stdout):
  """Speed: one row per workload x dtype (at the one batch size given here)."""
  del stdout
  table = pd.read_csv(pathlib.Path(rc.flag_value(argv, "--out_dir")) / "benchmark.csv")
  workloads, dtypes = (rc.flag_value(argv, f).split(",") for f in ("--workloads", "--dtypes"))
  assert len(table) == len(workloads) * len(dtypes)


def _check_variants(argv, stdout):
  del stdout
  out = pathlib.Path(rc.flag_value(argv, "--out_dir"))
  for variant in (a.split("=", 1)[1] for a in argv if a.startswith("--variants=")):
    assert (out / variant.split(":")[0] / "seed0" / "metrics.json").exists()


def _check_predictions(argv, stdout):
  """One row per input row, in order; the invalid SMILES has no prediction."""
  del stdout
  table = pd.read_csv(rc.flag_value(argv, "--output_csv"))
  given = pd.read_csv(rc.flag_value(argv, "--input_csv"))
  assert table["smiles"].tolist() == given["smiles"].tolist()
  assert table["line"].tolist() == list(range(2, len(given) + 2))
  valid = [int(featurize.featurize_smiles(s) is not None) for s in given.smiles]
  assert table["valid"].tolist() == valid and 0 in valid


def _check_private(argv, stdout):
  """DP-SGD: the epsilon spent is reported and stays within the target."""
  del stdout
  metrics = json.loads((pathlib.Path(rc.flag_value(argv, "--workdir")) /
                        "metrics.json").read_text())
  target = float(rc.flag_value(argv, "--config.privacy.target_epsilon"))
  assert 0 < metrics["privacy"]["epsilon"] <= target


def _check_folds(argv, stdout):
  del stdout
  workdir = pathlib.Path(rc.flag_value(argv, "--workdir"))
  for fold in range(int(rc.flag_value(argv, "--folds"))):
    assert (workdir / f"fold_{fold}" / "metrics.json").exists()


def _check_events(argv, stdout):
  """TensorBoard events, which the README lists among the quick run's outputs."""
  del stdout
  workdir = pathlib.Path(rc.flag_value(argv, "--workdir"))
  assert list(workdir.rglob("events.out.tfevents*")), f"no TensorBoard events in {workdir}"


def _check_deidentified(argv, stdout):
  """Both DICOM files written, the text file skipped, the audit beside the output."""
  del stdout
  out = pathlib.Path(rc.flag_value(argv, "--output_dir"))
  assert len(list(out.rglob("*.dcm"))) == 2
  assert pathlib.Path(f"{out}.deid_audit.csv").stat().st_size > 0
  summary = pathlib.Path(f"{out}.deid_summary.json").read_text()
  assert "notes.txt" in summary


def _check_plan(argv, stdout):
  """The plan covers the cases' shape with a patch the U-Net can pool."""
  plan = json.loads((pathlib.Path(rc.flag_value(argv, "--workdir")) / "plan.json").read_text())
  levels = len(plan["plan"]["features"])
  assert all(p % 2**(levels - 1) == 0 for p in plan["plan"]["patch_size"])
  assert "--config.task.patch_size=" in stdout


def _check_nifti_prediction(argv, stdout):
  """Labels on the input's own grid: same shape and affine as the scan."""
  del stdout
  import nibabel as nib  # pylint: disable=import-outside-toplevel
  scan = nib.load(pathlib.Path(rc.flag_value(argv, "--input_dir")) / "scan.nii.gz")
  labels = nib.load(pathlib.Path(rc.flag_value(argv, "--output_dir")) / "scan.nii.gz")
  assert labels.shape == scan.shape[:3]
  assert (abs(labels.affine - scan.affine) < 1e-5).all()


def _check_class_probabilities(argv, stdout):
  """One row per image, probabilities summing to 1, a class name as the prediction."""
  del stdout
  rows = pd.read_csv(rc.flag_value(argv, "--output_csv"))
  assert list(rows["file"]) == ["xray_0.png", "xray_1.png", "xray_2.png"]
  assert ((rows["p_NORMAL"] + rows["p_PNEUMONIA"]) - 1).abs().max() < 1e-5
  assert set(rows["prediction"]) <= {"NORMAL", "PNEUMONIA"}


def _check_launcher(argv, stdout):
  """The dry run shows the wrapped experiment's command."""
  assert argv[argv.index("--") + 1] in stdout


SEG = r"^experiments\.segmentation .*segmentation\.py:"
GEN = r"^experiments\.generative .*generative\.py:quick\b"
CASES = (
    Case("generative_quick", GEN, exclude="--mode=", extra=GAN_TINY,
         outputs=(("--workdir", "metrics.json"), ("--workdir", "samples/step_000002.png"))),
    Case("segmentation_gan", SEG + r"quick\b.*synthetic", extra=SEG_TINY, needs="generative_quick",
         outputs=(("--workdir", "metrics.json"),)),
    Case("generative_evaluate", GEN + ".*--mode=evaluate", needs="segmentation_gan",
         outputs=(("--workdir", "evaluation/sample_metrics.json"),
                  ("--workdir", "evaluation/pairs.png"))),
    Case("gan_study", r"^experiments\.bench\.gan_augmentation ", extra=("--dry_run",),
         slow=False),
    Case("segmentation_quick", SEG + r"quick\b", exclude="synthetic", extra=SEG_TINY,
         outputs=(*(("--workdir", f) for f in RUN_FILES), ("--workdir", "overlays.png"),
                  ("--workdir", "checkpoints")), check=_check_events),
    Case("segmentation_lung_ct", SEG + r"lung_ct\b", exclude=r"--mode=", extra=SEGMENTATION,
         outputs=(("--workdir", "metrics.json"), ("--workdir", "best"))),
    Case("segmentation_drive", SEG + r"drive\b", exclude=r"--mode=",
         extra=(*SEGMENTATION, "--config.task.patch_size=(16,16)",
                "--config.task.sliding_window.roi=(16,16)"),
         outputs=(("--workdir", "metrics.json"),)),
    Case("segmentation_folder", SEG + r"folder\b", extra=SEGMENTATION,
         outputs=(("--workdir", "metrics.json"),)),
    Case("segmentation_evaluate", SEG + r"drive\b.*--mode=evaluate",
         extra=(*SEGMENTATION, "--config.task.sliding_window.roi=(16,16)"),
         needs="segmentation_drive",
         outputs=(("--output_dir", "metrics.json"), ("--output_dir", "per_image.csv"))),
    Case("segmentation_explain", SEG + r"lung_ct\b.*--mode=explain", extra=EXPLAIN,
         needs="segmentation_lung_ct", outputs=EXPLAIN_FILES),
    Case("segmentation_predict_probabilities",
         SEG + r"lung_ct\b.*--mode=predict.*--probabilities=png16", extra=SEGMENTATION,
         needs="segmentation_lung_ct",
         outputs=(("--output_dir", "a.png"), ("--output_dir", "a_prob.png"))),
    Case("segmentation_predict", SEG + r"lung_ct\b.*--mode=predict", extra=SEGMENTATION,
         exclude=r"--probabilities",
         needs="segmentation_lung_ct",
         outputs=(("--output_dir", "a.png"), ("--output_dir", "b.png"))),
    Case("segmentation_quick3d", SEG + r"quick3d\b",
         extra=(*VOLUMES, "--config.task.builder.num_cases=3",
                "--config.task.builder.shape=(12,14,10)"),
         outputs=(("--workdir", "metrics.json"), ("--workdir", "val_cases.csv"),
                  ("--workdir", "val_summary.json"))),
    Case("segmentation_plan", SEG + r"hippocampus\b.*--mode=plan",
         outputs=(("--workdir", "plan.json"),), check=_check_plan),
    Case("segmentation_hippocampus", SEG + r"hippocampus\b", exclude=r"--mode=",
         extra=VOLUMES, outputs=(("--workdir", "metrics.json"), ("--workdir", "best"))),
    Case("segmentation_predict3d", SEG + r"hippocampus\b.*--mode=predict", extra=VOLUMES,
         needs="segmentation_hippocampus", check=_check_nifti_prediction),
    Case("classification_quick", CLS + r"quick\b",
         extra=(*CLASSIFICATION, "--config.task.builder.num_train=16",
                "--config.task.builder.num_val=8", "--config.task.builder.size=16"),
         outputs=tuple(("--workdir", f) for f in (*RUN_FILES, *CLS_FILES))),
    Case("classification_pneumonia", CLS + r"pneumonia_resnet18\b", exclude=r"--mode=",
         extra=(*CLASSIFICATION, *SMALL_2D, "--config.task.model.kwargs.small_input=True"),
         outputs=(("--workdir", "metrics.json"), ("--workdir", "best"))),
    Case("classification_adrenal3d", CLS + r"adrenal3d_resnet18\b", extra=CLASSIFICATION,
         outputs=(("--workdir", "metrics.json"),)),
    Case("classification_csv", CLS + r"csv\b",
         extra=(*CLASSIFICATION, *SMALL_2D, "--config.task.model.kwargs.block_config=(1,1)",
                "--config.task.model.kwargs.growth_rate=4", "--config.task.model.kwargs.bn_size=1",
                "--config.task.model.kwargs.small_input=True"),
         outputs=(("--workdir", "metrics.json"), ("--workdir", "report_val.json"))),
    Case("classification_predict", CLS + r"pneumonia_resnet18\b.*--mode=predict",
         extra=(*CLASSIFICATION, "--config.task.model.kwargs.small_input=True"),
         needs="classification_pneumonia", check=_check_class_probabilities),
    Case("classification_explain", CLS + r"pneumonia_resnet18\b.*--mode=explain",
         extra=EXPLAIN, needs="classification_pneumonia", outputs=EXPLAIN_FILES),
    Case("molecule_hpopt", r"^experiments\.molecule .*--mode=hpopt", outputs=(("--workdir",
         "hpopt_best.json"),), extra=(*MOLECULE, "--config.eval_every=1", "--hpopt_trials=1",
                                      "--config.task.split=random")),  # fixture: few scaffolds
    Case("molecule_explain", r"^experiments\.molecule .*molecule\.py:quick\b.*--mode=explain",
         extra=EXPLAIN, needs="molecule_quick", outputs=EXPLAIN_FILES),
    Case("molecule_quick", r"^experiments\.molecule .*molecule\.py:quick\b",
         exclude=r"--config\.task\.dataset=|--mode=", extra=MOLECULE,
         outputs=tuple(("--workdir", f) for f in (*RUN_FILES, "test_pred_vs_true.png"))),
    Case("molecule_esol_repeats", r"^experiments\.molecule .*molecule\.py:esol\b",
         exclude=r"--mode=", extra=(*MOLECULE, "--config.task.repeats=2"),
         outputs=(("--workdir", "summary.json"), ("--workdir", "run1/metrics.json"))),
    Case("molecule_any_csv", r"^experiments\.molecule .*--config\.task\.dataset=csv",
         extra=(*MOLECULE, "--config.eval_every=1"), slow=False, check=_check_any_csv,
         outputs=tuple(("--workdir", f) for f in (*RUN_FILES, "test_roc.png", "labels.csv"))),
    Case("molecule_predict", r"^experiments\.molecule .*--mode=predict",
         needs="molecule_esol_repeats", check=_check_predictions),
    Case("ehr_quick", r"^experiments\.ehr .*ehr\.py:quick\b", extra=EHR,
         outputs=tuple(("--workdir", f) for f in RUN_FILES)),
    Case("ehr_cv", r"^experiments\.ehr .*--mode=cv", extra=(*EHR, "--folds=3"),
         check=_check_folds),
    Case("ehr_whole_set", r"^experiments\.ehr .*--config\.task\.test_fraction=0\b",
         extra=EHR, outputs=(("--workdir", "metrics.json"),)),
    Case("ehr_explain", r"^experiments\.ehr .*--mode=explain", extra=EXPLAIN,
         needs="ehr_quick", outputs=EXPLAIN_FILES),
    Case("ehr_evaluate", r"^experiments\.ehr .*--mode=evaluate", needs="ehr_cv",
         outputs=(("--output_dir", "calibration_test.png"),)),
    Case("ehr_private", r"^experiments\.ehr .*--config\.privacy\.enabled=True", extra=EHR,
         check=_check_private),
    Case("ehr_retain", r"^experiments\.ehr .*ehr\.py:mimic_demo_retain\b", extra=EHR,
         outputs=(("--workdir", "metrics.json"),)),
    Case("federated", r"^experiments\.federated ",
         extra=("--config.federated.rounds=1", "--config.federated.local_steps=2",
                "--config.batch_size=8", "--config.task.hidden=8",
                "--config.task.synthetic_stays=160"),
         outputs=(("--workdir", "federated_table.md"), ("--workdir", "metrics.json"))),
    Case("launch_local", r"^launch\.local ", rewrite=_dry_run, check=_check_launcher,
         slow=False),
    Case("launch_slurm", r"^launch\.slurm ", rewrite=_dry_run, check=_check_launcher,
         slow=False),
    Case("launch_tpu_vm", r"^launch\.tpu_vm ", rewrite=_dry_run, check=_check_launcher,
         slow=False),
    Case("launch_k8s", r"^launch\.k8s ", rewrite=_dry_run, check=_check_launcher,
         slow=False),
    Case("deidentify", r"^experiments\.deidentify ", slow=False, check=_check_deidentified),
    Case("treatment_quick", r"^experiments\.treatment .*treatment\.py:quick\b",
         outputs=tuple(("--workdir", f) for f in (*RUN_FILES, "results.csv", "traces.png"))),
    Case("treatment_t1d", r"^experiments\.treatment .*treatment\.py:t1d_adult_ppo\b",
         extra=("--config.total_steps=2", "--config.eval_every=0", "--config.batch_size=8",
                "--config.task.num_steps=8", "--config.task.episode_steps=20",
                "--config.task.eval_episodes=1", "--config.task.val_episodes=1",
                "--config.task.eval_chunk=8", "--config.task.test_groups=adult=adult#008"),
         outputs=(("--workdir", "results.md"),)),
    Case("treatment_sepsis", r"^experiments\.treatment .*treatment\.py:sepsis_ppo\b",
         extra=("--config.total_steps=2", "--config.eval_every=0", "--config.batch_size=8",
                "--config.task.num_steps=8"), outputs=(("--workdir", "results.md"),)),
    Case("benchmark_treatment", r"^experiments\.benchmark .*--mode=treatment",
         extra=("--batch_sizes=2",), outputs=(("--out_dir", "treatment_speed.md"),)),
    Case("benchmark_speed", r"^experiments\.benchmark ", exclude=r"--mode=compare|--mode=treatment",
         extra=("--steps=1", "--warmup=0", "--batch_sizes=2"), check=_check_rows,
         outputs=(("--out_dir", "benchmark.md"), ("--out_dir", "results.jsonl"))),
    Case("benchmark_compare", r"^experiments\.benchmark .*--mode=compare",
         rewrite=_compare_tiny, check=_check_variants,
         outputs=(("--out_dir", "compare.md"), ("--out_dir", "compare.csv"))),
)
BY_NAME = {c.name: c for c in CASES}


def matching(argv: list[str]) -> list[Case]:
  text = " ".join(argv)
  return [c for c in CASES
          if re.search(c.pattern, text) and not (c.exclude and re.search(c.exclude, text))]


COMMANDS = rc.readme_commands()


def test_every_readme_command_has_a_case():
  assert len(COMMANDS) >= 10, f"found only {len(COMMANDS)} commands in {rc.README}"
  problems = [f"{len(m)} cases ({', '.join(c.name for c in m)}) match: {' '.join(a)}"
              for a in COMMANDS if len(m := matching(a)) != 1]
  assert not problems, ("each README command needs exactly one Case in "
                        f"{__file__}:\n" + "\n".join(problems))
  used = {c.name for a in COMMANDS for c in matching(a)}
  assert not set(BY_NAME) - used, f"cases matching no README command: {set(BY_NAME) - used}"


def test_extraction_joins_lines_splits_chains_and_knows_every_python_form():
  text = ("```bash\n# a comment\npython3 -m venv .venv && .venv/bin/python -m experiments.a"
          " --x=1 \\\n    --y=2   # trailing\nsource .venv/bin/activate\n"
          "JAX_PLATFORMS=cpu python -m launch.b -- experiments.c --z=3\n"
          "pip install -e .\npython -m pytest -q\n```\n```python\npython -m experiments.d\n```\n")
  assert rc.extract(text) == [["experiments.a", "--x=1", "--y=2"],
                              ["launch.b", "--", "experiments.c", "--z=3"]]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
  return rc.Sandbox(tmp_path_factory.mktemp("readme"))


_DONE: dict[str, subprocess.CompletedProcess] = {}


def run_case(case: Case, argv: list[str], sandbox: rc.Sandbox) -> list[str]:
  """Runs one README command as its case says (once per module); returns its argv."""
  if case.needs:
    (needed,) = [a for a in COMMANDS if BY_NAME[case.needs] in matching(a)][:1]
    run_case(BY_NAME[case.needs], needed, sandbox)
  argv = sandbox.substitute(argv)
  if case.rewrite:
    argv = case.rewrite(argv, sandbox)
  if "--config" in " ".join(argv) and argv[0] == "experiments.ehr":
    argv = [*argv, f"--config.task.cache_dir={sandbox.root / 'ehr_cache'}"]
  argv = [*argv, *case.extra]
  key = " ".join(argv)
  if key not in _DONE:
    start = time.perf_counter()
    _DONE[key] = subprocess.run([sys.executable, "-m", *argv], cwd=rc.REPO_ROOT,
                                env=sandbox.env(), capture_output=True, text=True,
                                timeout=600, check=False)
    print(f"{case.name}: {time.perf_counter() - start:.1f} s: python -m {key}")
  result = _DONE[key]
  assert result.returncode == 0, (
      f"exit {result.returncode}: python -m {key}\n{result.stdout[-3000:]}\n"
      f"{result.stderr[-6000:]}")
  return argv


def _params():
  params = []
  for i, argv in enumerate(COMMANDS):
    cases = matching(argv)
    if len(cases) != 1:
      continue  # test_every_readme_command_has_a_case reports it
    marks = [pytest.mark.slow] if cases[0].slow else []
    params.append(pytest.param(cases[0], argv, id=f"{cases[0].name}-{i}", marks=marks))
  return params


@pytest.mark.parametrize("case,argv", _params())
def test_readme_command_runs(case, argv, sandbox):
  argv = run_case(case, argv, sandbox)
  for flag, name in case.outputs:
    path = pathlib.Path(rc.flag_value(argv, flag)) / name
    assert path.exists(), f"{case.name}: {path} missing after python -m {' '.join(argv)}"
  if case.check:
    case.check(argv, _DONE[" ".join(argv)].stdout)
