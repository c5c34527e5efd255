"""classification.explanation: scores by hand; --mode=explain end to end (slow)."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import classification as cls_configs
from medjax.classification import explanation
from medjax.explain import mode


def test_probability_output_softmax_or_sigmoid_of_the_target():
  logits = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -3.0]], np.float32)
  targets = jnp.asarray([2, 0])
  softmax = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  np.testing.assert_allclose(explanation.probability_output(targets, False)(logits),
                             softmax[[0, 1], [2, 0]], rtol=1e-6)
  sigmoid = 1 / (1 + np.exp(-logits))
  np.testing.assert_allclose(explanation.probability_output(targets, True)(logits),
                             sigmoid[[0, 1], [2, 0]], rtol=1e-6)


# ------------------------------------------------------------------ end to end (slow)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  from medjax.classification import task as task_lib  # pylint: disable=import-outside-toplevel
  from medjax.engine import train  # pylint: disable=import-outside-toplevel
  tmp_path = tmp_path_factory.mktemp("cls")
  config = cls_configs.get_config("quick")
  t = config.task
  t.data_dir = str(tmp_path / "prepared")
  t.builder.update(num_train=16, num_val=8, size=16)
  t.eval_batch_size, t.bootstrap = 4, 0
  config.batch_size, config.total_steps, config.eval_every = 8, 3, 0
  config.async_checkpoints = False
  config.explain.update(examples=2, ig_steps=32, faithfulness_steps=4, random_seeds=2)
  task = task_lib.ClassificationTask(config.task)
  task.prepare()
  train.train_and_evaluate(config, str(tmp_path / "work"), task)
  return config, str(tmp_path / "work"), task


@pytest.mark.slow  # a 3-step training and every check compiled: ~1-2 min on 2 CPU cores
def test_explain_run_writes_figures_and_checks_of_the_predicted_class(trained):
  from medjax.engine import restore  # pylint: disable=import-outside-toplevel
  config, workdir, task = trained
  results = explanation.explain_run(config, workdir, task)
  out = os.path.join(workdir, mode.OUT_DIR)
  checks = json.load(open(os.path.join(out, mode.CHECKS_FILE), encoding="utf-8"))
  for key in ("integrated_gradients_completeness", "randomisation", "faithfulness",
              "targets", "probabilities", "files"):
    assert key in checks
  assert set(checks["files"]) == {"integrated_gradients_overlays.png", "gradcam_overlays.png",
                                  "faithfulness.png"}
  assert all(os.path.exists(os.path.join(out, f)) for f in checks["files"])
  assert results["ig_relative_gap"] < 0.05
  # The targets are the classes the engine's own predict function (restored
  # independently) ranks first for the explained validation images.
  saved = np.load(os.path.join(out, "attributions.npz"))
  _, predict = restore.load_for_prediction(config, workdir, task)
  probs = task.probabilities(predict({"image": saved["image"]}))
  np.testing.assert_allclose(checks["probabilities"], probs, rtol=1e-4, atol=1e-6)
  np.testing.assert_array_equal(checks["targets"], probs.argmax(1))
  # IG's completeness: the attributions add up to logit(x) - logit(0) of the target.
  logits = predict({"image": saved["image"]})
  base = predict({"image": np.zeros_like(saved["image"])})
  rows = np.arange(len(logits))
  change = (logits - base)[rows, checks["targets"]]
  total = saved["attributions"].reshape(len(rows), -1).sum(1)
  np.testing.assert_allclose(total, change, atol=0.05 * np.abs(change).max() + 1e-4)
