"""GAN pairs mixed into segmentation batches: rows, provenance, checks, one train step."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments.configs import segmentation as seg_configs
from medjax.engine import mesh as mesh_lib
from medjax.engine import steps
from medjax.engine.errors import InputError
from medjax.segmentation import synthetic
from medjax.segmentation import task as task_lib

_WORKDIR = "/runs/gan"


class FakeGenerator:
  """Duck-typed `medjax.generative.sampling.Generator`: image = label x scale + offset."""

  def __init__(self, data_config, channels=1, num_classes=None):
    self.config = ml_collections.ConfigDict({"task": {"data": data_config}})
    self.num_classes = data_config.num_classes if num_classes is None else num_classes
    self.channels = channels
    self.params = {"scale": np.linspace(0.2, 0.4, channels).astype(np.float32),
                   "offset": np.float32(0.1)}
    self.traced_shapes = []

  def generate(self, params, labels, key):
    del key
    self.traced_shapes.append(tuple(labels.shape))
    return labels[..., None].astype(jnp.float32) * params["scale"] + params["offset"]


def _config(ratio=0.5, **synthetic_options):
  c = seg_configs.task_config()
  c.synthetic.update(workdir=_WORKDIR, ratio=ratio, **synthetic_options)
  return c


def _fake(monkeypatch, generator):
  loads = []
  monkeypatch.setattr(synthetic, "load_generator",
                      lambda workdir: loads.append(workdir) or generator)
  return loads


def _batch(batch=8, size=16, classes=2, seed=0):
  rng = np.random.default_rng(seed)
  label = np.zeros((batch, size, size), np.int32)
  for b in range(batch):  # a distinct rectangle per row
    y, x = rng.integers(1, size - 8, 2)
    label[b, y:y + 3 + b % 5, x:x + 4 + b // 2] = classes - 1
  return {"image": rng.uniform(size=(batch, size, size, 1)).astype(np.float32),
          "label": label, "valid": (rng.uniform(size=label.shape) > 0.3).astype(np.float32),
          "_mask": np.ones(batch, np.float32)}


@pytest.mark.parametrize("ratio,batch,rows", [(0.0, 8, 0), (0.01, 8, 1), (0.3, 8, 2),
                                               (0.5, 5, 3), (0.9, 4, 3), (0.95, 8, 7)])
def test_synthetic_rows_rounds_half_up_keeping_one_real_and_one_generated_row(ratio, batch, rows):
  assert synthetic.synthetic_rows(ratio, batch) == rows


class _RecordingContext:
  """An UpdateContext whose gradient step hands back the batch and key it was given."""

  def __init__(self):
    self.augmented = []

  def gradient_step(self, state, batch, key, augment=True):
    del state
    self.augmented.append(augment)
    return (batch, jax.random.key_data(key)), {}


def _flips(m):
  return [m, m[::-1], m[:, ::-1], m[::-1, ::-1]]


def test_update_steps_on_the_generators_images_of_the_batchs_own_masks(monkeypatch):
  config = _config(ratio=0.3, max_degrees=0.0, scale=0.0, translate=0.0, elastic_alpha=0.0,
                   flip=True)  # flips only: each synthetic mask is a flip of a real row's
  config.augment.flip = False  # the real rows' own augmentation: none here
  generator = FakeGenerator(config)
  loads = _fake(monkeypatch, generator)
  task = task_lib.make_task(config)
  batch, key = _batch(), jax.random.PRNGKey(0)
  assert not loads  # lazy: the task alone needs no GAN
  ctx = _RecordingContext()
  (out, step_key), _ = jax.jit(lambda b, k: task.update(None, b, k, ctx))(batch, key)
  assert ctx.augmented == [False]  # augmented (cropped) before mixing, not again
  out = jax.tree.map(np.asarray, out)
  assert loads == [_WORKDIR] and generator.traced_shapes == [(2, 16, 16)]  # round(0.3 * 8)
  assert not np.array_equal(step_key, jax.random.key_data(key))
  n = 2
  np.testing.assert_allclose(out["image"][:n], out["label"][:n, :, :, None] * 0.2 + 0.1,
                             rtol=1e-6)
  # (source row, flip) of each synthetic row; its valid region is flipped alike.
  pairs = [next((i, j) for i in range(8) for j, f in enumerate(_flips(batch["label"][i]))
                if np.array_equal(m, f)) for m in out["label"][:n]]
  assert len({i for i, _ in pairs}) == n  # distinct rows of the batch (a permutation)
  for row, (i, j) in enumerate(pairs):
    np.testing.assert_array_equal(out["valid"][row], _flips(batch["valid"][i])[j])
  np.testing.assert_array_equal(out["_mask"], 1)
  for name in batch:  # the real rows are untouched
    np.testing.assert_array_equal(out[name][n:], batch[name][n:])
  assert out["label"].dtype == np.int32 and out["image"].dtype == np.float32


def test_ratio_0_takes_the_default_step_unchanged(monkeypatch):
  loads = _fake(monkeypatch, None)
  task = task_lib.make_task(_config(ratio=0.0))
  batch, key = _batch(), jax.random.PRNGKey(0)
  (out, step_key), _ = task.update(None, batch, key, _RecordingContext())
  assert out is batch and np.array_equal(step_key, jax.random.key_data(key)) and not loads


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5])
def test_a_ratio_outside_0_1_is_an_input_error(ratio):
  with pytest.raises(InputError, match=r"config\.task\.synthetic\.ratio must be in \[0, 1\)"):
    task_lib.make_task(_config(ratio=ratio))


def test_a_ratio_without_a_workdir_is_an_input_error():
  config = _config()
  config.synthetic.workdir = ""
  with pytest.raises(InputError, match="config.task.synthetic.workdir is empty"):
    task_lib.make_task(config)


def test_configs_saved_before_synthetic_existed_train_without_it():
  old = seg_configs.task_config().to_dict()
  del old["synthetic"]
  task = task_lib.make_task(ml_collections.ConfigDict(old))
  assert not task.mixer.enabled


def _mismatch(monkeypatch, config, generator):
  _fake(monkeypatch, generator)
  with pytest.raises(InputError) as error:
    synthetic.Mixer(config).load()
  return str(error.value)


def test_a_generator_for_other_classes_or_channels_is_an_input_error(monkeypatch):
  config = _config()
  message = _mismatch(monkeypatch, config, FakeGenerator(config, num_classes=3))
  assert "config.task.num_classes=2" in message and _WORKDIR in message
  assert "(3 classes)" in message
  message = _mismatch(monkeypatch, config, FakeGenerator(config, channels=3))
  assert "1 channel(s)" in message and "makes 3" in message and _WORKDIR in message


def test_a_generator_for_other_preprocessing_is_an_input_error(monkeypatch):
  config = _config()
  other = _config()
  other.hu_window = (-160.0, 240.0)
  message = _mismatch(monkeypatch, config, FakeGenerator(other))
  assert "config.task.hu_window=(-1000.0, 400.0)" in message
  assert "config.task.data.hu_window=(-160.0, 240.0)" in message and _WORKDIR in message
  other = _config()
  other.preprocess, other.channels = "uint8", (1,)
  message = _mismatch(monkeypatch, config, FakeGenerator(other))
  assert "config.task.preprocess='ct'" in message and "'uint8'" in message


@pytest.mark.parametrize("field,value", [("train_count", 187), ("train_subset_seed", 1),
                                         ("dataset", "drive")])
def test_a_generator_trained_on_other_images_is_an_input_error(monkeypatch, field, value):
  config = _config()
  config.train_count = 8
  other = _config()
  other.train_count = 8
  other[field] = value
  message = _mismatch(monkeypatch, config, FakeGenerator(other))
  assert f"config.task.data.{field}={value!r}" in message and "same training images" in message


@pytest.mark.slow  # a U-Net train step's compile: ~20 s of CPU
def test_one_jitted_train_step_mixes_half_the_batch(monkeypatch):
  config = seg_configs.get_config("quick")
  config.task.model.features = (4, 8)
  config.task.augment.flip = False
  config.task.synthetic.update(workdir=_WORKDIR, ratio=0.5)
  config.batch_size = 8
  generator = FakeGenerator(config.task)
  loads = _fake(monkeypatch, generator)
  task = task_lib.make_task(config.task)
  mesh = mesh_lib.make_mesh(config.mesh)
  state, train_step, _ = steps.build(task, config, mesh)
  assert not loads  # lazy: building the task and its state needs no GAN
  state, metrics = train_step(state, mesh_lib.shard_batch(_batch(), mesh))
  assert loads == [_WORKDIR] and int(state.step) == 1
  assert generator.traced_shapes == [(4, 16, 16)]  # round(0.5 * 8) generated rows
  assert np.isfinite(float(metrics["loss"]))
