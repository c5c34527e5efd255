"""Target column names with commas: a Python list in the flag, or a file of names."""

import pytest

from experiments.configs import molecule as molecule_configs
from medjax.engine.errors import InputError
from medjax.molecule import columns
from medjax.molecule import task as task_lib

HEADER = 'smiles,"Hepatobiliary disorders","Renal and urinary disorders, other",plain\n'
ROWS = "CCO,1,0,2.5\nc1ccccc1,0,1,1.5\nCCN,1,,0.5\n"
COMMA = "Renal and urinary disorders, other"


def test_comma_list_python_list_and_file_parse(tmp_path):
  assert columns.parse("y1, y2") == ("y1", "y2")
  assert columns.parse("") is None
  assert columns.parse(f'("{COMMA}", "plain")') == (COMMA, "plain")
  assert columns.parse(f"['{COMMA}']") == (COMMA,)
  names = tmp_path / "names.txt"
  names.write_text(f"Hepatobiliary disorders\n\n  {COMMA}  \n")
  assert columns.parse("", str(names)) == ("Hepatobiliary disorders", COMMA)


@pytest.mark.parametrize("text, message", [
    ('("a", 3)', "list of quoted names"), ('("a"', "not a Python list"),
    ("a,b,a", r"\['a'\] named more than once")])
def test_bad_lists_are_input_errors(text, message):
  with pytest.raises(InputError, match=message):
    columns.parse(text)


def test_list_and_file_both_or_neither(tmp_path):
  with pytest.raises(InputError, match="not both"):
    columns.parse("y", str(tmp_path / "names.txt"))
  with pytest.raises(InputError, match="names.txt: cannot read"):
    columns.parse("", str(tmp_path / "names.txt"))
  (tmp_path / "empty.txt").write_text("\n \n")
  with pytest.raises(InputError, match="no column names"):
    columns.parse("", str(tmp_path / "empty.txt"))


def _cfg(tmp_path, **fields):
  path = tmp_path / "side.csv"
  path.write_text(HEADER + ROWS)
  cfg = molecule_configs.task_config()
  cfg.update(dict(dataset="csv", csv_path=str(path), task_type="binary",
                  cache_dir=str(tmp_path / "cache"), **fields))
  return cfg


def test_comma_column_loads_from_list_and_file(tmp_path):
  data = task_lib.load_dataset(_cfg(tmp_path, target_columns=f'("{COMMA}",)'))
  assert data.task_names == (COMMA,)
  assert data.targets[:2, 0].tolist() == [0.0, 1.0] and str(data.targets[2, 0]) == "nan"
  names = tmp_path / "names.txt"
  names.write_text(f"{COMMA}\nHepatobiliary disorders\n")
  data = task_lib.load_dataset(_cfg(tmp_path, target_columns_file=str(names)))
  assert data.task_names == (COMMA, "Hepatobiliary disorders")
  assert data.targets[:, 1].tolist() == [1.0, 0.0, 1.0]


def test_missing_column_is_named_with_its_flag(tmp_path):
  with pytest.raises(InputError, match=r"\['Renal, typo'\] not in its columns.*"
                                       r"--config.task.target_columns\)"):
    task_lib.load_dataset(_cfg(tmp_path, target_columns='("plain", "Renal, typo")'))
  names = tmp_path / "names.txt"
  names.write_text("plain\nRenal, typo\n")
  with pytest.raises(InputError, match=r"\['Renal, typo'\].*target_columns_file=.*names.txt"):
    task_lib.load_dataset(_cfg(tmp_path, target_columns_file=str(names)))
