"""experiments.benchmark: the speed rows and the accuracy comparison (mean ± sd)."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from experiments import benchmark
from experiments.bench import compare
from experiments.bench import workloads
from medjax.ehr import physionet, synthetic
from medjax.engine.errors import InputError

_ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_speed_row_of_a_workload(tmp_path):
  row = benchmark.time_workload("grud_synthetic", 16, "float32", steps=3, warmup=1)
  assert row["workload"] == "grud_synthetic_6var" and row["devices"] == 8  # alias followed
  assert row["shape"].startswith(f"16 stays x 48 bins x {len(synthetic.VARIABLES)} series")
  assert row["step_ms"] > 0 and row["compile_s"] > 0 and row["gflops_per_step"] > 0
  np.testing.assert_allclose(row["examples_per_s"], 16 / (row["step_ms"] / 1e3), rtol=0.02)
  assert row["mfu_pct"] == "" and row["peak_mem_gib"] == ""  # a CPU: no peak, no stats
  # One device's buffers hold at least its 2 stays' values, mask and delta.
  assert row["xla_mem_gib"] * 2**30 >= 2 * 48 * len(synthetic.VARIABLES) * 3 * 4
  for _ in range(2):
    benchmark.write_results([row], str(tmp_path))
  lines = (tmp_path / "results.jsonl").read_text().splitlines()
  assert len(lines) == 2 and json.loads(lines[1])["step_ms"] == row["step_ms"]
  assert (tmp_path / "benchmark.csv").read_text().splitlines()[0].startswith(
      "date,workload,shape")
  table = (tmp_path / "benchmark.md").read_text()
  assert "| grud_synthetic_6var | 16 stays x 48 bins" in table
  assert "- peak_mem_gib: blank on cpu" in table and "--peak_tflops" in table


def _row(device, dtype="float32", peak_mem="", mfu=""):
  return {"device": device, "dtype": dtype, "peak_mem_gib": peak_mem, "mfu_pct": mfu}


def test_notes_say_why_columns_are_blank():
  cpu = benchmark.notes([_row("cpu")])
  assert any(n.startswith("peak_mem_gib: blank on cpu:") for n in cpu)
  assert any(n.startswith("mfu_pct: blank on cpu float32:") and "--peak_tflops=" in n
             for n in cpu)
  gpu = benchmark.notes([_row("NVIDIA H100", peak_mem=3.2, mfu=41.0)])
  assert not any(n.startswith(("peak_mem_gib", "mfu_pct")) for n in gpu)
  assert any(n.startswith("xla_mem_gib:") for n in gpu)  # what the column measures
  mixed = benchmark.notes([_row("NVIDIA H100", "bfloat16", 3.2, 41.0),
                           _row("NVIDIA H100", "float16", 3.2)])
  assert any(n.startswith("mfu_pct: blank on NVIDIA H100 float16:") for n in mixed)


def test_peak_flops_from_the_table_or_the_flag():
  assert benchmark._peak("cpu", "float32") is None
  assert benchmark._peak("cpu", "float32", peak_tflops=2.5) == 2.5e12
  assert benchmark._peak("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
  assert benchmark._peak("NVIDIA H100 80GB HBM3", "float16") is None


def test_workload_names_and_aliases():
  assert benchmark.DEFAULT_WORKLOADS == workloads.REAL_SHAPES
  assert set(workloads.DEFAULT_BATCH) == set(workloads.WORKLOADS)
  assert workloads.resolve("unet_lung_ct") == "unet_lung_ct_256"
  assert workloads.resolve("grud_synthetic") == "grud_synthetic_6var"
  assert all(workloads.resolve(a) in workloads.WORKLOADS for a in workloads.ALIASES)
  with pytest.raises(InputError, match="unknown workload 'grud'.*grud_p12_37var"):
    workloads.resolve("grud")


def test_random_icu_stays_observe_the_asked_share_of_cells():
  data = workloads.random_icu_stays(50, physionet.SERIES, observed=0.2, seed=1)
  assert len(data) == 50 and data.variables == physionet.SERIES
  assert 0 <= data.times.min() and data.times.max() < 48
  cells = 48 * len(physionet.SERIES) * 50
  assert abs(len(data.times) / cells - 0.2) < 0.01
  stay = data.stay_of_event()
  hour = np.floor(data.times).astype(int)
  assert len(set(zip(stay, hour, data.var_index))) == len(data.times)  # one per cell
  assert np.all(np.diff(data.times[data.offsets[0]:data.offsets[1]]) >= 0)


def test_real_shape_batches():
  """Each README workload's batch, without compiling (a step of each: the slow test)."""
  unet = workloads.build("unet_lung_ct_256", "float32", 8)
  assert unet.make_batch(8, np.random.default_rng(0))["image"].shape == (8, 256, 256, 1)
  assert tuple(unet.model.features) == (16, 32, 64, 128)  # the lung_ct preset's
  grud = workloads.build("grud_p12_37var", "float32", 128)
  batch = grud.make_batch(128, None)
  assert batch["values"].shape == batch["mask"].shape == (128, 48, 37)
  assert grud.cfg.hidden == 64 and grud.cfg.dropout == 0.3  # the p12_grud preset's
  molecules = workloads.build("dmpnn_druglike", "float32", 64)
  batch = molecules.make_batch(64, None)
  ids = batch["index"][batch["index"] >= 0]
  atoms = molecules.data.store.num_atoms
  assert len(ids) == 64 and atoms.min() >= 20 and atoms.max() <= 60
  assert batch["node_mask"].sum() == atoms[ids].sum()  # the real molecules fill the slots
  assert f"64 molecules ({atoms[ids].mean():.1f} heavy atoms" in molecules.shape(batch)


@pytest.mark.slow
@pytest.mark.parametrize("name", workloads.REAL_SHAPES)
def test_real_shape_workloads_step(name):
  row = benchmark.time_workload(name, workloads.DEFAULT_BATCH[name], "float32", steps=1,
                                warmup=0)
  assert row["workload"] == name and row["step_ms"] > 0 and row["gflops_per_step"] > 0


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
  assert "same in every run" not in compare.markdown(rows)
  with pytest.raises(KeyError, match="'extra'"):
    compare.summarize(results, ["extra"])


def test_metrics_equal_in_every_run_go_below_the_table():
  runs = lambda aucs: [{"auc": a, "count": 240.0, "prevalence": 0.1, "n_pos": p}
                       for a, p in zip(aucs, (24.0, 25.0))]
  rows = compare.summarize({"gru": runs([0.8, 0.82]), "grud": runs([0.83, 0.84])})
  assert rows[0]["prevalence"] == (0.1, 0.0)  # exactly, not 0.1 +- 1e-17
  assert compare.constant_metrics(rows) == {"count": 240.0, "prevalence": 0.1}
  table = compare.markdown(rows)
  header, *_ = table.splitlines()
  assert header == "| variant | n | auc | n_pos |"  # n_pos differs between seeds
  assert "| gru | 2 | 0.8100 ± 0.0141 | 24.5000 ± 0.7071 |" in table
  assert table.splitlines()[-1] == ("The same in every run (not in the table): count 240, "
                                    "prevalence 0.1.")
  # Equal across variants but not across seeds, or one run only: stays in the table.
  varied = compare.summarize({"a": [{"x": 1.0}, {"x": 3.0}], "b": [{"x": 2.0}, {"x": 2.0}]})
  assert compare.constant_metrics(varied) == {}
  assert compare.constant_metrics(compare.summarize({"a": [{"x": 1.0}]})) == {}
  one_seed = compare.summarize({"a": [{"x": 1.0, "y": 2.0}], "b": [{"x": 1.0, "y": 3.0}]})
  assert compare.constant_metrics(one_seed) == {"x": 1.0}


def test_run_all_runs_each_cell_once_then_reads_it_back(tmp_path, monkeypatch):
  calls = []

  def fake_run(command, check):  # the experiment: writes its metrics.json
    assert check
    calls.append(command)
    workdir = next(a for a in command if a.startswith("--workdir=")).split("=", 1)[1]
    seed = int(next(a for a in command if a.startswith("--config.seed=")).split("=")[1])
    (pathlib.Path(workdir) / "metrics.json").write_text(
        json.dumps({"last": {"auc": 0.5 + seed / 10, "count": 240}}))
  monkeypatch.setattr(compare.subprocess, "run", fake_run)
  variants = [compare.Variant("a", ("task.model=gru",)), compare.Variant("b", ())]
  first = compare.run_all("ehr", "c.py", variants, [0, 1], str(tmp_path))
  assert first == {"a": [{"auc": 0.5, "count": 240.0}, {"auc": 0.6, "count": 240.0}],
                   "b": [{"auc": 0.5, "count": 240.0}, {"auc": 0.6, "count": 240.0}]}
  assert sorted(c[-1] for c in calls) == sorted(
      f"--workdir={tmp_path}/{v}/seed{s}" for v in "ab" for s in (0, 1))
  assert "--config.task.model=gru" in calls[0]
  assert compare.run_all("ehr", "c.py", variants, [0, 1], str(tmp_path)) == first
  assert len(calls) == 4  # read back, not rerun


@pytest.mark.slow
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
  assert "test/count" not in table.splitlines()[0]  # the same test set in both runs
  assert "test/count" in table.splitlines()[-1]
  assert first.stdout.count("running:") == 2
  again = subprocess.run(command, cwd=_ROOT, capture_output=True, text=True, timeout=300)
  assert again.returncode == 0 and "running:" not in again.stdout  # read back, not rerun
  assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 2
