"""experiments.benchmark: the speed rows and the accuracy comparison (mean ± sd)."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from experiments import benchmark
from experiments.bench import compare

_ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_speed_row_of_a_workload(tmp_path):
  row = benchmark.time_workload("grud_synthetic", 16, "float32", steps=3, warmup=1)
  assert row["workload"] == "grud_synthetic" and row["devices"] == 8
  assert row["step_ms"] > 0 and row["compile_s"] > 0 and row["gflops_per_step"] > 0
  np.testing.assert_allclose(row["examples_per_s"], 16 / (row["step_ms"] / 1e3), rtol=0.02)
  assert row["mfu_pct"] == ""  # no known peak for a CPU
  for _ in range(2):
    benchmark.write_results([row], str(tmp_path))
  lines = (tmp_path / "results.jsonl").read_text().splitlines()
  assert len(lines) == 2 and json.loads(lines[1])["step_ms"] == row["step_ms"]
  assert (tmp_path / "benchmark.csv").read_text().splitlines()[0].startswith("date,workload")
  assert "| grud_synthetic |" in (tmp_path / "benchmark.md").read_text()


@pytest.mark.parametrize("text,label,overrides", [
    ("gru:task.model=gru,task.hidden=64", "gru", ("task.model=gru", "task.hidden=64")),
    ("task.model=gin", "task.model_gin", ("task.model=gin",)),
    ("", "base", ()),
    ("p:task.raw_dir=/data/a:b", "p", ("task.raw_dir=/data/a:b",))])
def test_parse_variant(text, label, overrides):
  assert compare.parse_variant(text) == compare.Variant(label, overrides)


def test_parse_variant_errors():
  with pytest.raises(ValueError, match="not key=value"):
    compare.parse_variant("a:task.model")
  with pytest.raises(ValueError, match="label"):
    compare.parse_variant("a b:x=1")


def test_reused_workdir_must_hold_the_same_run(tmp_path):
  variant = compare.Variant("a", ("task.model=gru",))
  compare._check_same_command(str(tmp_path), compare.run_command("ehr", "c.py", variant, 0,
                                                                   str(tmp_path)))
  other = compare.run_command("ehr", "c.py", compare.Variant("a", ("task.model=grud",)), 0,
                              str(tmp_path))
  with pytest.raises(ValueError, match="another command"):
    compare._check_same_command(str(tmp_path), other)
  with pytest.raises(ValueError, match="labels must differ"):
    compare.run_all("ehr", "c.py", [variant, variant], [0], str(tmp_path))


def test_summary_is_mean_and_sample_sd():
  results = {"a": [{"auc": 0.7, "loss": 1.0}, {"auc": 0.8, "loss": 2.0},
                   {"auc": 0.9, "loss": 4.0, "extra": 1.0}], "b": [{"auc": 0.5, "loss": 3.0}]}
  rows = compare.summarize(results)
  assert [r["variant"] for r in rows] == ["a", "b"] and "extra" not in rows[0]
  np.testing.assert_allclose(rows[0]["loss"], (np.mean([1, 2, 4]), np.std([1, 2, 4], ddof=1)))
  assert np.isnan(rows[1]["auc"][1])  # one run: no sd
  assert "| a | 3 | 0.8000 ± 0.1000 | 2.3333 ± 1.5275 |" in compare.markdown(rows)
  with pytest.raises(KeyError, match="'extra'"):
    compare.summarize(results, ["extra"])


def test_compare_runs_each_seed_and_resumes(tmp_path):
  command = [sys.executable, "-m", "experiments.benchmark", "--mode=compare",
             "--experiment=ehr", "--config=experiments/configs/ehr.py:quick",
             "--variants=gru:task.model=gru,total_steps=4,eval_every=0,log_every=2,"
             "task.synthetic_stays=80", "--seeds=0,1", f"--out_dir={tmp_path}"]
  first = subprocess.run(command, cwd=_ROOT, capture_output=True, text=True, timeout=300)
  assert first.returncode == 0, first.stderr[-3000:]
  runs = [json.loads((tmp_path / "gru" / f"seed{s}" / "metrics.json").read_text())
          for s in (0, 1)]
  aucs = [r.get("best", r["last"])["test/auroc"] for r in runs]
  table = (tmp_path / "compare.md").read_text()
  assert f"{np.mean(aucs):.4f} ± {np.std(aucs, ddof=1):.4f}" in table
  assert first.stdout.count("running:") == 2
  again = subprocess.run(command, cwd=_ROOT, capture_output=True, text=True, timeout=300)
  assert again.returncode == 0 and "running:" not in again.stdout  # read back, not rerun
  assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 2
