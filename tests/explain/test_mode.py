"""explain.mode: the config, examples and targets of every task's --mode=explain."""

import json

import ml_collections
import numpy as np
import pytest

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


def test_config_for_explain_takes_the_run_config_and_the_explain_flags(tmp_path):
  trained = base_config()
  trained.task = ml_collections.ConfigDict(dict(model=dict(features=(8, 16)), size=32))
  trained.explain.method = "gradients"
  trained.mesh.data = 8
  workdir_lib.save_config(str(tmp_path), trained)
  given = base_config()  # as the command line gives it: a preset plus explain flags
  given.task = ml_collections.ConfigDict(dict(model=dict(features=(1,)), size=4))
  given.explain.method, given.explain.examples = "smoothgrad", 2
  config = mode.config_for_explain(given, str(tmp_path))
  assert list(config.task.model.features) == [8, 16] and config.task.size == 32
  assert config.explain.method == "smoothgrad" and config.explain.examples == 2
  assert config.mesh.data == -1  # this machine's mesh, not the training one's
  assert mode.config_for_explain(given, str(tmp_path / "none")) is given  # no config.json


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
