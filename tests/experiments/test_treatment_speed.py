"""benchmark --mode=treatment: its table files, and one real tiny measurement (slow)."""

import csv
import json

import pytest

from experiments.bench import treatment_speed


def test_write_makes_csv_markdown_and_appends_jsonl(tmp_path):
  rows = [dict(what="a", batch=1, steps_per_s=10.0, vs_reference=1.0),
          dict(what="b", batch=64, steps_per_s=2000.0, vs_reference=200.0)]
  text = treatment_speed.write(rows, str(tmp_path))
  assert "| b | 64 | 2000.0 | 200.0 |" in text
  with open(tmp_path / "treatment_speed.csv", encoding="utf-8") as f:
    assert [r["what"] for r in csv.DictReader(f)] == ["a", "b"]
  treatment_speed.write(rows, str(tmp_path))
  with open(tmp_path / "results.jsonl", encoding="utf-8") as f:
    assert [json.loads(line)["batch"] for line in f] == [1, 64, 1, 64]


@pytest.mark.slow
def test_ppo_throughput_counts_env_steps_of_an_update():
  per_update, rate = treatment_speed.ppo_throughput("quick", updates=1)
  assert per_update == 8 * 16  # quick: 8 envs x 16 steps
  assert rate > 0
