"""generative.features: pooled U-Net encoder levels, checked level by level by hand."""

import os

import jax
import numpy as np
import pytest

from experiments.configs import segmentation as seg_configs
from medjax.engine.errors import InputError
from medjax.generative import features
from medjax.segmentation import unet


@pytest.fixture(scope="module")
def tiny():
  """A (4, 8) U-Net with random parameters and running statistics (no init compile)."""
  model = unet.UNet(num_classes=2, features=(4, 8), norm="batch")
  rng = np.random.default_rng(0)
  images = rng.random((3, 16, 16, 1)).astype(np.float32)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), images)
  params = jax.tree.map(lambda s: rng.normal(0, 0.5, s.shape).astype(np.float32),
                        shapes["params"])
  stats = jax.tree.map(lambda s: rng.uniform(0.2, 1.0, s.shape).astype(np.float32),
                       shapes["batch_stats"])
  return model, {"params": params, "batch_stats": stats}, images


def _conv_bn_relu(x, kernel, scale, bias, mean, var):
  """numpy: 3x3 'SAME' cross-correlation, evaluation-mode batch norm, ReLU."""
  h, w = x.shape[1:3]
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  y = sum(padded[:, i:i + h, j:j + w] @ kernel[i, j] for i in range(3) for j in range(3))
  return np.maximum((y - mean) / np.sqrt(var + 1e-5) * scale + bias, 0.0)


def _block(variables, name, x):
  """The U-Net's ConvBlock `name` (two conv -> norm -> ReLU) by hand in numpy."""
  p, s = variables["params"][name], variables["batch_stats"][name]
  for i in range(2):
    bn, st = p[f"BatchNorm_{i}"], s[f"BatchNorm_{i}"]
    x = _conv_bn_relu(x, p[f"Conv_{i}"]["kernel"], bn["scale"], bn["bias"], st["mean"],
                      st["var"])
  return x


def test_features_are_each_encoder_level_averaged_over_space(tiny):
  model, variables, images = tiny
  got = np.asarray(features.pooled_encoder(model, variables)(images))
  assert got.shape == (3, 4 + 8) and got.dtype == np.float32
  level0 = _block(variables, "ConvBlock_0", images)
  pooled = level0.reshape(3, 8, 2, 8, 2, 4).max(axis=(2, 4))  # 2x2 max pooling
  level1 = _block(variables, "ConvBlock_1", pooled)
  assert level1.shape == (3, 8, 8, 8)
  np.testing.assert_allclose(got[:, :4], level0.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(got[:, 4:], level1.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)
  assert np.count_nonzero(got.std(0)) >= 10  # the images differ, so do their features


def test_non_unet_runs_are_refused_before_any_restore(tmp_path):
  config = seg_configs.get_config("quick")
  config.task.model.name = "resunet"
  with pytest.raises(InputError, match="need a 2D U-Net run"):
    features.unet_features(config, str(tmp_path))
  with pytest.raises(InputError, match="does not exist"):
    features.unet_features(config, str(tmp_path / "missing"))
  with pytest.raises(InputError, match="has no config.json"):
    features.unet_features(None, str(tmp_path))


@pytest.mark.slow  # a 2-step segmentation training on the phantom (~1 min on 2 busy cores)
def test_unet_features_of_a_trained_workdir(tmp_path):
  from medjax.engine import restore  # pylint: disable=import-outside-toplevel
  from medjax.engine import train  # pylint: disable=import-outside-toplevel
  from medjax.engine import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
  from medjax.explain import loading  # pylint: disable=import-outside-toplevel
  from medjax.segmentation import task as task_lib  # pylint: disable=import-outside-toplevel
  config = seg_configs.get_config("quick")
  t = config.task
  t.data_dir, t.model.features, t.report_images = str(tmp_path / "prepared"), (4, 8), 0
  t.builder.update(num_train=8, num_val=4, size=32)
  config.batch_size, config.total_steps, config.eval_every = 8, 2, 0
  config.async_checkpoints = False
  workdir = str(tmp_path / "work")
  task = task_lib.make_task(config.task)
  task.prepare()
  os.makedirs(workdir)
  task.write_run_files(workdir)
  train.train_and_evaluate(config, workdir, task)
  workdir_lib.save_config(workdir, config)  # as experiments/segmentation.py does
  images = np.random.default_rng(1).random((2, 32, 32, 1)).astype(np.float32)
  fn = features.unet_features(None, workdir)
  state, _ = restore.load_for_prediction(config, workdir, task)
  want = features.pooled_encoder(task.model, loading.variables_of(state))(images)
  assert want.shape == (2, 12)
  np.testing.assert_allclose(np.asarray(fn(images)), np.asarray(want), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(features.unet_features(config, workdir)(images)),
                             np.asarray(want), rtol=1e-6)
