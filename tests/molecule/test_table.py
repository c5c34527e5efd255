"""CSV rows and their file lines; missing labels counted per task; bad cells named."""

import logging

import numpy as np
import pandas as pd
import pytest

from experiments.configs import molecule as molecule_configs
from medjax.engine.errors import InputError
from medjax.molecule import datasets, table
from medjax.molecule import task as task_lib

# Line by line (header = line 1). Line 5 is blank; the quoted note on line 7 spans
# lines 7-8; "C1CC((" and "xyz" are invalid SMILES; empty / NA / blank cells are missing.
FIXTURE = """smiles,y1,y2,note
CCO,1,0,
C1CC((,0,1,
c1ccccc1,,1,

CCN,0,,
CCCl,1,0,"two
lines"
xyz,NA,0,
CCBr, ,1,
c1ccncc1,1,0,
"""
# Hand count over the valid molecules (CCO, c1ccccc1, CCN, CCCl, CCBr, c1ccncc1):
# y1 is missing for c1ccccc1 and CCBr, y2 for CCN. xyz's NA is not counted (invalid).
MISSING = {"y1": 2, "y2": 1}
VALID_LINES = [2, 4, 6, 7, 10, 11]
INVALID = [(3, 1, "C1CC(("), (9, 5, "xyz")]  # (line, row, smiles)


@pytest.fixture
def csv_path(tmp_path):
  path = tmp_path / "labels.csv"
  path.write_text(FIXTURE)
  return path


def test_lines_follow_the_file_with_blank_lines_and_quoted_newlines(csv_path):
  t = table.read(csv_path)
  assert list(t.frame.columns) == ["smiles", "y1", "y2", "note"]
  np.testing.assert_array_equal(t.lines, [2, 3, 4, 6, 7, 9, 10, 11])
  assert t.frame["note"][4] == "two\nlines"
  assert t.where(5) == f"{csv_path} line 9"
  # Data rows agree with pandas (which skips blank lines the same way).
  np.testing.assert_array_equal(
      t.frame["smiles"], pd.read_csv(csv_path, keep_default_na=False)["smiles"])


def test_missing_labels_are_counted_per_task(csv_path, tmp_path):
  spec = datasets.DatasetSpec("labels.csv", target_columns=("y1", "y2"), task_type="binary")
  data = datasets.load(spec, csv_path, cache_dir=tmp_path / "cache")
  assert data.missing_labels() == MISSING
  np.testing.assert_array_equal(data.lines[data.rows], VALID_LINES)
  assert [(int(data.lines[r]), r, s) for r, s in data.invalid] == INVALID


def test_the_run_files_and_log_report_lines_and_missing_labels(csv_path, tmp_path, caplog):
  cfg = molecule_configs.task_config()
  cfg.update(dict(dataset="csv", csv_path=str(csv_path), target_columns="y1,y2",
                  task_type="binary", cache_dir=str(tmp_path / "cache"), hidden=8,
                  split_fractions=(0.5, 0.5, 0.0)))
  with caplog.at_level(logging.INFO):
    task = task_lib.MoleculeTask(cfg, batch_size=4)
  task.write_run_files(str(tmp_path / "run"))
  invalid = pd.read_csv(tmp_path / "run" / "invalid_smiles.csv", keep_default_na=False)
  assert list(invalid.itertuples(index=False, name=None)) == INVALID
  counts = pd.read_csv(tmp_path / "run" / "labels.csv")
  assert counts.to_dict("list") == {"task": ["y1", "y2"], "labelled": [4, 5],
                                    "missing": [2, 1]}
  split = pd.read_csv(tmp_path / "run" / "split.csv", keep_default_na=False)
  assert list(split["row"]) == sorted(data_rows := list(task.data.rows))
  assert sorted(split["split"]) == ["train"] * 3 + ["val"] * 3
  for name in ("train", "val"):  # the rows of each split are the task's own
    want = sorted(task.data.rows[task.split[name]])
    assert list(split.loc[split["split"] == name, "row"]) == want
  assert list(split["smiles"]) == [task.data.smiles[list(data_rows).index(r)]
                                   for r in split["row"]]
  messages = [r.getMessage() for r in caplog.records]
  assert "task y1: 2 of 6 molecules have no label" in messages
  assert "task y2: 1 of 6 molecules have no label" in messages
  assert f"invalid SMILES skipped: {csv_path} line 9: 'xyz'" in messages


def test_a_non_numeric_target_names_file_line_and_column(tmp_path):
  path = tmp_path / "bad.csv"
  path.write_text("smiles,y\nCCO,1.5\n\nCCN,active\nCCC,2\n")
  spec = datasets.DatasetSpec("bad.csv", target_columns=("y",))
  with pytest.raises(InputError, match=rf"{path} line 4, column 'y': 'active'"):
    datasets.load(spec, path, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("text,message", [
    ("smiles,y\nCCO,1,2\n", "line 2: 3 fields, but the header has 2"),
    ("smiles,y,y\nCCO,1,2\n", r"\['y'\] appear more than once"),
    ("", "empty file"),
])
def test_malformed_files_are_input_errors(tmp_path, text, message):
  path = tmp_path / "m.csv"
  path.write_text(text)
  with pytest.raises(InputError, match=message):
    table.read(path)


def test_missing_csv_and_columns_name_the_flag(tmp_path):
  cfg = molecule_configs.task_config()
  cfg.update(dataset="csv", csv_path=str(tmp_path / "nope.csv"))
  with pytest.raises(InputError, match="--config.task.csv_path=.*nope.csv: no such file"):
    task_lib.load_dataset(cfg)
  (tmp_path / "ok.csv").write_text("smiles,y\nCCO,1\n")
  cfg.update(csv_path=str(tmp_path / "ok.csv"), target_columns="y,z",
             cache_dir=str(tmp_path / "cache"))
  with pytest.raises(InputError, match=r"target columns \['z'\].*target_columns"):
    task_lib.load_dataset(cfg)
