"""The classification task: losses against numpy references, weights, augmentation,
thresholds and metrics; one-step runs of the presets and the predict command (slow)."""

import csv
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from experiments.configs import classification as cls_configs
from medjax.classification import evaluation
from medjax.classification import task as task_lib
from medjax.classification.data import sources
from medjax.engine.errors import InputError
from tests.classification.data import fixtures


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_softmax_loss_weights_smoothing_and_padding():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(5, 3)).astype(np.float32)
  labels = np.array([0, 2, 1, 2, 0])
  mask = np.array([1, 1, 1, 1, 0], np.float32)
  weights = np.array([0.5, 2.0, 1.0], np.float32)
  eps = 0.1
  targets = np.eye(3)[labels] * (1 - eps) + eps / 3
  ce = -(targets * _log_softmax(logits.astype(np.float64))).sum(-1)
  w = mask * weights[labels]
  loss, terms = task_lib.softmax_loss(jnp.asarray(logits), {"label": labels, "_mask": mask},
                                      weights, eps)
  np.testing.assert_allclose(float(loss), (w * ce).sum() / w.sum(), rtol=1e-5)
  expected_acc = np.mean(logits[:4].argmax(-1) == labels[:4])
  np.testing.assert_allclose(float(terms["accuracy"]), expected_acc)


def test_multi_label_loss_masks_and_weights_positives():
  logits = np.array([[2.0, -1.0], [0.5, 3.0]], np.float32)
  targets = np.array([[1, 0], [0, 1]], np.float32)
  label_mask = np.array([[1, 1], [0, 1]], np.float32)
  pos_weight = np.array([3.0, 0.5], np.float32)
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  bce = -(pos_weight * targets * np.log(p) + (1 - targets) * np.log(1 - p))
  expected = (bce * label_mask).sum() / label_mask.sum()
  loss, _ = task_lib.multi_label_loss(
      jnp.asarray(logits), {"targets": targets, "label_mask": label_mask,
                            "_mask": np.ones(2, np.float32)}, pos_weight)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_balanced_class_weights_match_sklearn():
  from sklearn.utils import class_weight  # pylint: disable=import-outside-toplevel
  labels = np.array([0] * 6 + [1] * 3 + [2])
  info = sources.DataInfo(("a", "b", "c"), False, 2, 1, (4, 4, 1),
                          {"train": np.bincount(labels).tolist()}, ("train",))
  expected = class_weight.compute_class_weight("balanced", classes=np.arange(3), y=labels)
  np.testing.assert_allclose(task_lib.class_weights(info, "balanced", "ignore"), expected,
                             rtol=1e-6)
  counts = {"positive": [2, 1], "negative": [6, 3], "uncertain": [2, 0], "missing": [0, 6]}
  multi = info._replace(classes=("a", "b"), multi_label=True, label_counts={"train": counts})
  np.testing.assert_allclose(task_lib.class_weights(multi, "balanced", "ones"), [6 / 4, 3])
  np.testing.assert_allclose(task_lib.class_weights(multi, "balanced", "zeros"), [8 / 2, 3])


def _task(tmp_path, **augment):
  config = cls_configs.get_config("quick")
  config.task.data_dir = str(tmp_path / "prepared") if tmp_path else ""
  config.task.builder.update(num_train=8, num_val=8, size=8)
  config.task.augment.update({"flip_axes": (), **augment})
  return task_lib.ClassificationTask(config.task)


def test_augment_flips_images_only(tmp_path):
  task = _task(tmp_path, flip_axes=(2,))
  image = jnp.asarray(np.random.default_rng(0).normal(size=(6, 8, 8, 1)), jnp.float32)
  batch = {"image": image, "label": jnp.arange(6), "_mask": jnp.ones(6)}
  out = jax.jit(task.augment)(batch, jax.random.PRNGKey(0))
  assert set(out) == set(batch) and np.array_equal(out["label"], batch["label"])
  flipped = [np.array_equal(o, np.flip(i, 1)) for o, i in zip(out["image"], image)]
  kept = [np.array_equal(o, i) for o, i in zip(out["image"], image)]
  assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
  assert _task(tmp_path).augment(batch, jax.random.PRNGKey(0)) is batch


@pytest.mark.slow  # two compilations, ~5 s
def test_augment_rotation_and_3d_flips():
  task = _task(None, rotate_degrees=30.0)
  image = jnp.zeros((2, 8, 8, 1)).at[:, 2:6, 3:5].set(1.0)
  out = jax.jit(task.augment)({"image": image, "label": jnp.zeros(2, jnp.int32)},
                              jax.random.PRNGKey(1))["image"]
  assert out.shape == image.shape and not np.allclose(out, image)
  np.testing.assert_allclose(out.sum((1, 2, 3)), image.sum((1, 2, 3)), rtol=0.25)
  config = cls_configs.get_config("adrenal3d_resnet18")
  config.task.augment.rotate_degrees = 0.0
  task = task_lib.ClassificationTask(config.task, info=sources.DataInfo(
      ("normal", "mass"), False, 3, 1, (4, 4, 4, 1), {}, ()))
  volume = jnp.arange(2 * 64, dtype=jnp.float32).reshape(2, 4, 4, 4, 1)
  out = task.augment({"image": volume}, jax.random.PRNGKey(2))["image"]
  for o, v in zip(np.asarray(out), np.asarray(volume)):
    assert any(np.array_equal(o, np.flip(v, axes)) if axes else np.array_equal(o, v)
               for axes in [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)])


def test_evaluator_metrics_match_sklearn_and_set_threshold(tmp_path):
  task = _task(tmp_path)
  weights = np.random.default_rng(2).normal(size=64)

  def predict(batch):  # a fixed "model": logit of class 1 from the pixels
    score = batch["image"].reshape(len(batch["image"]), -1) @ weights
    return np.stack([np.zeros_like(score), score], -1)

  evaluator = task.evaluators()[0]
  results = dict(evaluator.run(predict))
  probs, labels, _, _ = evaluation.collect(task, predict, task.eval_sources["val"], 3)
  assert len(labels) == 8 and task.thresholds is not None
  np.testing.assert_allclose(results["roc_auc_macro"],
                             sk_metrics.roc_auc_score(labels, probs[:, 1]))
  np.testing.assert_allclose(results["accuracy"], np.mean(probs.argmax(-1) == labels))


def test_task_balanced_sampling_follows_the_source_order(tmp_path):
  names = {"NORMAL": tuple(f"IM-{i:04d}-0001.png" for i in range(9)),
           "PNEUMONIA": ("person1_virus_1.png", "person2_virus_2.png", "person3_virus_3.png")}
  fixtures.write_image_folder(tmp_path / "raw", {"train": names, "val": names}, size=(4, 4))
  config = cls_configs.get_config("seed_cnn")
  config.task.update(dict(raw_dir=str(tmp_path / "raw"), data_dir=str(tmp_path / "prep"),
                          sampling="balanced"))
  config.task.builder.size = (4, 4)
  task = task_lib.ClassificationTask(config.task)
  it = iter(task.train_dataset(12, seed=0))
  drawn = np.concatenate([next(it)["label"] for _ in range(30)])
  assert abs(drawn.mean() - 0.5) < 0.07  # 25% pneumonia in the folder


def test_model_kwargs_keep_the_fields_of_the_chosen_model():
  model = cls_configs.get_config("csv").task.model  # densenet121 fields
  assert task_lib.model_kwargs(model)["growth_rate"] == 32
  model.name = "resnet18"
  assert task_lib.model_kwargs(model) == {"width": 1.0, "small_input": False}


def test_bad_config_fields_name_the_flag(tmp_path):
  config = cls_configs.get_config("quick")
  for field, value, match in (("class_weighting", "auto", "class_weighting"),
                              ("sampling", "over", "sampling"),
                              ("uncertain_policy", "maybe", "uncertain_policy"),
                              ("label_smoothing", 1.5, "label_smoothing")):
    c = cls_configs.get_config("quick").task
    c[field] = value
    with pytest.raises(InputError, match=match):
      task_lib.ClassificationTask(c)
  config.task.dataset = "image_folder"
  with pytest.raises(InputError, match="raw_dir is empty"):
    task_lib.ClassificationTask(config.task).prepare()


def _tiny_preset(preset, tmp_path):
  config = cls_configs.get_config(preset)
  t = config.task
  t.data_dir = str(tmp_path / "prepared")
  if preset == "quick":
    t.builder.update(num_train=16, num_val=8, size=16)
  elif t.dataset == "image_folder":
    fixtures.write_image_folder(tmp_path / "raw", size=(20, 20))
    t.raw_dir, t.builder.size, t.builder.val_fraction = str(tmp_path / "raw"), (16, 16), 0.3
  elif t.dataset == "medmnist":
    fixtures.write_npz(tmp_path / "m.npz", spatial=(8, 8, 8), counts=(("train", 8), ("val", 4)))
    t.raw_dir = str(tmp_path / "m.npz")
  elif t.dataset == "csv":
    rows = [(f"patient{i}/v.png", str(i % 2), ["-1", "1", ""][i % 3]) for i in range(8)]
    t.raw_dir = fixtures.write_csv(tmp_path / "raw", rows)
    t.builder.update(label_columns=("Atelectasis", "Edema"), size=(16, 16), val_fraction=0.3)
  if t.model.name != "seed_cnn":
    t.model.kwargs.update(dict(width=0.125, small_input=True))
  if t.model.name == "densenet121":
    t.model.kwargs.update(dict(block_config=(1, 1), growth_rate=4, bn_size=1))
  t.eval_batch_size = 4
  config.batch_size = 8
  t.bootstrap = 20
  config.total_steps = 1
  config.async_checkpoints = False
  return config


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(cls_configs.PRESETS))
def test_one_step_run_of_every_preset(preset, tmp_path):
  config = _tiny_preset(preset, tmp_path)
  from medjax.engine import train  # pylint: disable=import-outside-toplevel
  task = task_lib.ClassificationTask(config.task)
  task.prepare()
  results = train.train_and_evaluate(config, str(tmp_path / "work"), task)
  auc = results["val/roc_auc_macro"]
  assert 0.0 <= auc <= 1.0 or np.isnan(auc)
  assert (tmp_path / "work" / "roc_val.png").exists()
  assert np.isfinite(results["val/loss"])
  with open(tmp_path / "work" / "predictions_val.csv", encoding="utf-8") as f:
    assert len(list(csv.reader(f))) == 1 + len(task.eval_sources["val"])


@pytest.mark.slow
def test_predict_folder_writes_probabilities(tmp_path):
  from medjax.classification import predict  # pylint: disable=import-outside-toplevel
  from medjax.engine import train  # pylint: disable=import-outside-toplevel
  config = _tiny_preset("seed_cnn", tmp_path)
  task = task_lib.ClassificationTask(config.task)
  task.prepare()
  task.save_info(str(tmp_path))
  train.train_and_evaluate(config, str(tmp_path), task)
  fresh = task_lib.ClassificationTask.from_workdir(config.task, str(tmp_path))
  out = tmp_path / "probs.csv"
  folder = tmp_path / "raw" / "train" / "NORMAL"
  assert predict.predict_folder(config, str(tmp_path), fresh, str(folder), str(out)) == 4
  with open(out, encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert [r["file"] for r in rows] == sorted(os.listdir(folder))
  for r in rows:
    np.testing.assert_allclose(float(r["p_NORMAL"]) + float(r["p_PNEUMONIA"]), 1, atol=1e-5)
    assert r["prediction"] in ("NORMAL", "PNEUMONIA")
