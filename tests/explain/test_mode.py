"""explain.mode: the config, examples and targets of every task's --mode=explain."""

import json
import logging

from absl import flags
import ml_collections
import numpy as np
import pytest
from ml_collections import config_flags

from medjax.engine import workdir as workdir_lib
from medjax.engine.config import base_config
from medjax.engine.errors import InputError
from medjax.explain import mode


def _explain(**fields):
  config = base_config().explain
  config.update(fields)
  return config


def test_example_indices_first_examples_or_given_indices():
  assert mode.example_indices(_explain(examples=3), 10) == [0, 1, 2]
  assert mode.example_indices(_explain(examples=30), 4) == [0, 1, 2, 3]
  assert mode.example_indices(_explain(indices=(7, 2)), 10) == [7, 2]


@pytest.mark.parametrize("fields, size, message", [
    (dict(indices=(3, 12)), 10, "--config.explain.indices: [12] outside split 'val'"),
    (dict(examples=0), 10, "--config.explain.examples must be >= 1"),
    (dict(split="test"), 0, "--config.explain.split=test has no examples"),
])
def test_bad_examples_name_the_flag(fields, size, message):
  with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
    mode.example_indices(_explain(**fields), size)


def test_check_target():
  assert mode.check_target(-1, 3) == -1 and mode.check_target(2, 3) == 2
  with pytest.raises(InputError, match=r"--config.explain.target=3: the model has 3 classes"):
    mode.check_target(3, 3)
  with pytest.raises(InputError, match=r"has 2 tasks \(0..1\); -1 explains task 0"):
    mode.check_target(2, 2, "task", "task 0")
  with pytest.raises(InputError, match=r"has 1 output \(0..0\)"):
    mode.check_target(1, 1, "output")


def test_refuse_gradcam_before_loading():
  assert mode.refuse_gradcam("smoothgrad", "no map") == "smoothgrad"
  with pytest.raises(InputError, match="^--config.explain.method=gradcam: no map$"):
    mode.refuse_gradcam("gradcam", "no map")
  with pytest.raises(InputError, match="did you mean 'gradients'"):
    mode.refuse_gradcam("gradient", "no map")


def test_config_for_explain_keeps_the_run_and_applies_the_given_explain_flags(tmp_path):
  trained = base_config()
  trained.task = ml_collections.ConfigDict(dict(model=dict(features=(8, 16)), size=32))
  trained.explain.method, trained.explain.ig_steps = "gradients", 16
  trained.mesh.data = 8
  workdir_lib.save_config(str(tmp_path), trained)
  given = base_config()  # as the command line gives it: a preset plus explain flags
  given.task = ml_collections.ConfigDict(dict(model=dict(features=(1,)), size=4))
  given.mesh.fsdp = 2
  config = mode.config_for_explain(str(tmp_path), {"method": "smoothgrad", "examples": 2},
                                   given)
  assert list(config.task.model.features) == [8, 16] and config.task.size == 32
  assert config.explain.method == "smoothgrad" and config.explain.examples == 2
  assert config.explain.ig_steps == 16  # not given: the run's saved value
  assert (config.mesh.data, config.mesh.fsdp) == (-1, 2)  # this command's mesh
  assert mode.config_for_explain(str(tmp_path)).mesh.data == -1  # no --config: the default
  with pytest.raises(InputError, match="--config.explain.ig_stpes: no such field"):
    mode.config_for_explain(str(tmp_path), {"ig_stpes": 3}, given)
  assert mode.config_for_explain(str(tmp_path / "none"), {}, given) is given  # no config.json
  with pytest.raises(InputError, match="has no config.json"):
    mode.config_for_explain(str(tmp_path / "none"))


def test_explain_overrides_are_the_explain_flags_given(caplog):
  argv = ["prog", "--config.explain.examples=7", "--config.seed=3", "--config.mesh.data=1"]
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_dict("config", base_config(), flag_values=flag_values,
                                  sys_argv=argv)
  flag_values(argv)
  with caplog.at_level(logging.WARNING):
    got = mode.explain_overrides(flag_values, flag_values.config)
  assert got == {"examples": 7}
  assert "not ['config.seed']" in caplog.text  # mesh flags apply: not warned about
  assert mode.explain_overrides(flag_values, None) == {}


def test_twin_seed_differs_from_the_training_seed():
  assert mode.twin_seed(1, 0) == 1
  assert mode.twin_seed(1, 1) == 2  # else the twin would be the run's own initial state


def test_write_checks_leaves_out_the_raw_curves(tmp_path):
  curve = {"fraction": np.linspace(0, 1, 3), "curve": np.ones((1, 3)), "auc": np.ones(1),
           "random_curve": np.ones((1, 3)), "random_auc": np.ones(1)}
  faith = {"deletion_auc": 0.3, "random_deletion_auc": 0.5, "insertion_auc": 0.7,
           "random_insertion_auc": 0.5,
           "per_example": {"deletion": curve, "insertion": curve}}
  checks = {"integrated_gradients_completeness": {"relative_gap_mean": 0.01},
            "randomisation": {"full": {"abs": 0.2, "signed": 0.1}}, "faithfulness": faith,
            "faithful": True, "_faithfulness_curves": faith}
  got = mode.write_checks(checks, str(tmp_path / "explain"), {"ids": ["a"]})
  assert got["deletion_auc"] == 0.3 and got["faithful"] == 1.0
  written = json.loads((tmp_path / "explain" / mode.CHECKS_FILE).read_text())
  assert written["faithfulness"] == {k: v for k, v in faith.items() if k != "per_example"}
  assert written["ids"] == ["a"] and "_faithfulness_curves" not in written
  assert (tmp_path / "explain" / mode.CURVES_FILE).exists()


def test_open_split_names_the_flag_and_chooses_the_examples():
  source, indices = mode.open_split(lambda split: list(range(5)), "val", _explain(examples=2))
  assert source == [0, 1, 2, 3, 4] and indices == [0, 1]

  def missing(split):
    raise InputError(f"no {split} split in /data")
  with pytest.raises(InputError, match=r"^--config.explain.split=test: no test split in /data"):
    mode.open_split(missing, "test", _explain())


def test_draw_maps_slices_3d_maps_through_the_peak_or_the_given_centre(tmp_path, monkeypatch):
  drawn = []
  monkeypatch.setattr(mode.figures, "orthogonal_slices",
                      lambda volume, heat, path, centre, **kw: drawn.append((path, centre)))
  maps = np.zeros((2, 3, 4, 5))
  maps[0, 1, 2, 3], maps[1, 2, 0, 4] = 5.0, -7.0  # peaks of |map|
  stem = str(tmp_path / "ig")
  paths = mode.draw_maps(stem, np.zeros((2, 3, 4, 5, 1)), maps, ["a", "b"], True, "t")
  assert paths == [stem + "_0.png", stem + "_1.png"]
  assert [tuple(int(i) for i in c) for _, c in drawn] == [(1, 2, 3), (2, 0, 4)]
  mode.draw_maps(stem, np.zeros((2, 3, 4, 5, 1)), maps, ["a", "b"], True, "t",
                 centres=[(0, 0, 0), (1, 1, 1)])
  assert [c for _, c in drawn[2:]] == [(0, 0, 0), (1, 1, 1)]
