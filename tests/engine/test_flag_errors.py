"""Flag and config-field mistakes become one-line InputErrors naming the flag."""

import sys

from absl import flags
from ml_collections import config_flags
import pytest

from medjax.engine import flag_errors
from medjax.engine.errors import InputError

CONFIG = '''
import ml_collections

def get_config(preset="small"):
  if preset != "small":
    raise ValueError(f"unknown preset {preset!r}; known: ['small']")
  return ml_collections.ConfigDict(dict(
      total_steps=10, rate=0.1, flag=True, name="a",
      model=dict(features=(1, 2), norm="batch")))
'''


def _parse(monkeypatch, tmp_path, *args, config_text=CONFIG):
  """Parses `args` ("CFG" stands for the config file's path) into fresh flags."""
  path = tmp_path / "cfg.py"
  path.write_text(config_text)
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "config", lock_config=True,
                                  flag_values=values)
  flags.DEFINE_string("workdir", None, "workdir", flag_values=values)
  flags.mark_flag_as_required("workdir", flag_values=values)
  argv = ["prog", *(a.replace("CFG", str(path)) for a in args)]
  monkeypatch.setattr(sys, "argv", argv)  # config flags read their overrides from here
  return flag_errors.parse(argv, values), values, str(path)


def test_good_flags_parse_and_apply_overrides(monkeypatch, tmp_path):
  remaining, values, _ = _parse(monkeypatch, tmp_path, "--config=CFG:small",
                                "--config.total_steps=5", "--config.model.norm=layer",
                                "--workdir=/w", "extra")
  assert remaining == ["prog", "extra"]
  assert values.config.total_steps == 5 and values.config.model.norm == "layer"


@pytest.mark.parametrize("override, message", [
    ("--config.totl_steps=5",
     "--config.totl_steps: no such config field; did you mean total_steps?"),
    ("--config.modle.norm=x",
     "--config.modle.norm: no such config field; did you mean model.norm?"),
    ("--config.model.zzz=1",
     "--config.model.zzz: no such config field (fields of model: features, norm)"),
    ("--config.total_steps.x=1",
     "--config.total_steps.x: total_steps is a value (int), not a group of fields"),
    ("--config.total_steps=abc", "--config.total_steps=abc: expected an integer, got 'abc'"),
    ("--config.rate=fast", "--config.rate=fast: expected a number, got 'fast'"),
    ("--config.flag=maybe", "--config.flag=maybe: expected true or false, got 'maybe'"),
])
def test_config_field_mistakes_name_the_flag_in_one_line(monkeypatch, tmp_path, override,
                                                          message):
  with pytest.raises(InputError) as e:
    _parse(monkeypatch, tmp_path, "--config=CFG:small", override, "--workdir=/w")
  assert str(e.value) == message


def test_unknown_preset_gives_the_config_files_message_not_its_traceback(monkeypatch,
                                                                          tmp_path):
  with pytest.raises(InputError) as e:
    _parse(monkeypatch, tmp_path, "--config=CFG:nope", "--workdir=/w")
  path = str(tmp_path / "cfg.py")
  assert str(e.value) == f"--config={path}:nope: unknown preset 'nope'; known: ['small']"


@pytest.mark.parametrize("override", [(), ("--config.total_steps=3",)])
def test_missing_config_file(monkeypatch, tmp_path, override):
  missing = tmp_path / "missing.py"
  with pytest.raises(InputError) as e:
    _parse(monkeypatch, tmp_path, f"--config={missing}", *override, "--workdir=/w")
  assert str(e.value) == (f"--config={missing}: cannot load the config file: [Errno 2] "
                          f"No such file or directory: '{missing}'")


def test_missing_required_and_unknown_flags(monkeypatch, tmp_path):
  with pytest.raises(InputError, match="^--workdir is required$"):
    _parse(monkeypatch, tmp_path, "--config=CFG:small")
  with pytest.raises(InputError, match="Unknown command line flag 'worksdir'"):
    _parse(monkeypatch, tmp_path, "--config=CFG:small", "--worksdir=/w")


def test_a_bug_in_a_config_file_keeps_its_own_exception(monkeypatch, tmp_path):
  buggy = "def get_config(preset=None):\n  return {}.nope\n"
  with pytest.raises(AttributeError, match="nope"):
    _parse(monkeypatch, tmp_path, "--config=CFG", "--config.x=1", "--workdir=/w",
           config_text=buggy)


def test_unknown_field_walks_nested_configs():
  from ml_collections import config_dict  # pylint: disable=import-outside-toplevel
  c = config_dict.ConfigDict(dict(task=dict(model=dict(features=(1,)), loss="ce")))
  assert flag_errors.unknown_field(c, "task.model.features") is None
  assert flag_errors.unknown_field(c, "task.los") == (
      "no such config field; did you mean task.loss?")
  assert flag_errors.unknown_field(c, "xyz") == (
      "no such config field (fields of the config: task)")
