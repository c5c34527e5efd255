import json
import logging
import math

import pytest

from medjax.engine import writers
from tests.engine.test_resume import _events


def test_non_finite_scalars_go_to_jsonl_only_and_are_reported_once(tmp_path, caplog):
  writer = writers.MetricWriter(str(tmp_path), enabled=True)
  with caplog.at_level(logging.INFO):
    writer.write_scalars(1, {"val/dice": 0.5, "val/hd95": math.inf, "val/auc": math.nan})
    writer.write_scalars(2, {"val/dice": 0.6, "val/hd95": math.inf, "val/auc": 0.7})
    writer.write_scalars(3, {"val/hd95": -math.inf})
  writer.close()
  tags = [(v.tag, e.step) for _, e in _events(str(tmp_path / "tensorboard"))
          for v in e.summary.value]
  assert sorted(tags) == [("val/auc", 2), ("val/dice", 1), ("val/dice", 2)]
  messages = [r.getMessage() for r in caplog.records]
  assert sum("val/hd95 = inf" in m for m in messages) == 1
  assert sum("val/auc = nan" in m for m in messages) == 1
  assert not any("val/hd95" in m for m in messages if "-inf" in m)  # once per name
  assert not any("NaN or Inf found" in m for m in messages)  # tensorboardX's own warning
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert rows == [{"step": 1, "val/dice": 0.5, "val/hd95": "inf", "val/auc": "nan"},
                  {"step": 2, "val/dice": 0.6, "val/hd95": "inf", "val/auc": 0.7},
                  {"step": 3, "val/hd95": "-inf"}]


def _write(path, rows):
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))


ROWS = [{"step": 2, "train/loss": 1.0}, {"step": 4, "train/loss": 0.5},
        {"step": 4, "val/mse": 0.9}, {"step": 6, "train/loss": 0.4},
        {"step": 6, "val/mse": 0.8}]


@pytest.mark.parametrize("redo,kept", [(False, ROWS[:3]), (True, ROWS[:2])])
def test_rewind_keeps_the_rows_up_to_the_resumed_step(tmp_path, redo, kept):
  # Rows after step 4 go; at step 4 itself, evaluation rows go only with `redo`
  # (a finished run's final evaluation, which runs again).
  path = tmp_path / "metrics.jsonl"
  _write(path, ROWS)
  dropped = writers.rewind_jsonl(str(path), 4, redo_evaluations=redo)
  assert [json.loads(line) for line in path.read_text().splitlines()] == kept
  assert dropped == len(ROWS) - len(kept)
  assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no temporary left


def test_rewind_drops_a_line_cut_short(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1, "train/loss": 1.0}\n{"step": 2, "train/lo')
  writers.rewind_jsonl(str(path), 5)
  assert path.read_text() == '{"step": 1, "train/loss": 1.0}\n'
