"""`--mode=explain` of the EHR task: config read back, stays chosen, checks and figures."""

import json
import os

import numpy as np
import pytest
from scipy import stats

from experiments.configs import ehr as ehr_configs
from medjax.ehr import explanation
from medjax.ehr import task as task_lib
from medjax.engine import train
from medjax.engine import workdir as workdir_lib
from medjax.engine.errors import InputError
from medjax.explain import mode


def _tiny_config():
  config = ehr_configs.get_config("quick")
  config.total_steps, config.batch_size = 3, 8
  config.eval_every, config.checkpoint_every, config.log_every = 0, 3, 1
  config.async_checkpoints = False
  config.task.update(dict(hidden=8, synthetic_stays=40))
  config.explain.update(dict(examples=3, ig_steps=16, faithfulness_steps=4, random_seeds=2))
  return config


def test_saved_config_read_back_with_explain_flags_winning(tmp_path):
  with pytest.raises(InputError, match="config.json"):
    mode.config_for_explain(str(tmp_path))
  saved = _tiny_config()
  saved.mesh.data = 8  # trained on 8 devices: explained on this machine's mesh
  workdir_lib.save_config(str(tmp_path), saved)
  config = mode.config_for_explain(str(tmp_path), {"method": "gradients", "indices": (2, 0)})
  assert config.mesh.data == -1
  assert config.explain.method == "gradients" and list(config.explain.indices) == [2, 0]
  assert config.explain.ig_steps == 16  # the run's saved value, not the default 64
  assert config.task.hidden == 8
  with pytest.raises(InputError, match="explain.ig_stpes"):
    mode.config_for_explain(str(tmp_path), {"ig_stpes": 3})


def test_chosen_positions():
  """The stays are chosen by `mode.example_indices` on the EHR explain config."""
  config = _tiny_config().explain  # examples=3
  assert mode.example_indices(config, 10) == [0, 1, 2]
  assert mode.example_indices(config, 2) == [0, 1]
  config.indices = (4, 1)
  assert mode.example_indices(config, 10) == [4, 1]
  with pytest.raises(InputError, match=r"explain.indices: \[4\] outside split 'val'"):
    mode.example_indices(config, 4)


@pytest.mark.parametrize("overrides, message", [
    ({"method": "gradcam"}, "no spatial feature map"),
    ({"method": "integrated_gradient"}, "did you mean 'integrated_gradients'"),
    ({"target": 1}, r"the model has 1 output \(0..0\); -1 explains it"),
])
def test_bad_explain_fields_refused_before_data_is_read(tmp_path, overrides, message):
  workdir_lib.save_config(str(tmp_path), _tiny_config())
  config = mode.config_for_explain(str(tmp_path), overrides)
  with pytest.raises(InputError, match=message):
    explanation.explain_run(config, str(tmp_path))


def test_retain_is_refused(tmp_path):
  saved = _tiny_config()
  saved.task.model = "retain"
  workdir_lib.save_config(str(tmp_path), saved)
  with pytest.raises(InputError, match="integer codes"):
    explanation.explain_run(mode.config_for_explain(str(tmp_path)), str(tmp_path))


def test_observed_rank_correlation_matches_scipy_on_observed_entries():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 6, 3)), rng.normal(size=(2, 6, 3))
  mask = rng.random((2, 6, 3)) > 0.4
  a[~mask], b[~mask] = 0.0, 0.0  # unobserved: 0 under both models
  got = explanation.observed_rank_correlation(a, b, mask)
  for i in range(2):
    m = mask[i]
    assert got["signed_per_example"][i] == pytest.approx(stats.spearmanr(a[i][m], b[i][m])[0])
    assert got["abs_per_example"][i] == pytest.approx(
        stats.spearmanr(np.abs(a[i][m]), np.abs(b[i][m]))[0])
  # Over all entries the shared zeros alone push the correlation up.
  everything = explanation.observed_rank_correlation(a, b, np.ones_like(mask))
  assert everything["abs"] > got["abs"]


@pytest.fixture(scope="module")
def explained_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("ehr_explain"))
  config = _tiny_config()
  workdir_lib.save_config(workdir, config)
  task = task_lib.EhrTask(config.task, batch_size=config.batch_size, workdir=workdir)
  train.train_and_evaluate(config, workdir, task)
  return workdir, explanation.explain_run(mode.config_for_explain(workdir), workdir)


@pytest.mark.slow  # a training and compiled checks: ~70 s of CPU
def test_explain_writes_figures_and_checks(explained_run):
  workdir, checks = explained_run
  files = os.listdir(os.path.join(workdir, "explain"))
  ids = checks["ehr"]["ids"]
  assert len(ids) == 3
  assert {"checks.json", "variables.png", "faithfulness.png",
          *(f"patient_{i}.png" for i in ids)} <= set(files)
  saved = json.loads(open(os.path.join(workdir, "explain", "checks.json")).read())
  assert {"integrated_gradients_completeness", "randomisation", "faithfulness", "faithful",
          "ehr"} <= set(saved)
  assert set(saved["randomisation"]) == {"full", "observed_only"}
  assert saved["ehr"]["split"] == "val" and saved["ehr"]["score"] == "mortality logit"
  assert saved["integrated_gradients_completeness"]["relative_gap_mean"] < 0.02
  # The stays are the split's first three, in order.
  task = task_lib.EhrTask(_tiny_config().task, batch_size=8, workdir=workdir)
  np.testing.assert_array_equal(ids, task.examples.ids[task.splits["val"][:3]])


@pytest.mark.slow
def test_unobserved_entries_get_no_attribution(explained_run):
  """The baseline (0) is the value of an unobserved entry, and the GRU reads values
  times mask: IG and even plain gradients are exactly 0 there."""
  workdir, checks = explained_run
  batch, attr = checks["_batch"], checks["_attributions"]
  unobserved = batch["mask"] == 0
  assert unobserved.any() and (~unobserved).any()
  assert np.all(attr[unobserved] == 0.0)
  assert np.abs(attr[~unobserved]).max() > 0
  config = mode.config_for_explain(workdir, {"method": "gradients"})
  grads = explanation.explain_run(config, workdir)["_attributions"]
  assert np.all(grads[unobserved] == 0.0) and np.abs(grads[~unobserved]).max() > 0
