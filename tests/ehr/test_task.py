"""EhrTask pieces that need no compilation: statistics files, loss, sampling, batching."""

import json

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.configs import ehr as ehr_configs
from medjax.ehr import examples as ex
from medjax.ehr import task as task_lib


def _cfg(**overrides):
  cfg = ehr_configs.get_config("quick").task
  cfg.update(dict(synthetic_stays=60, **overrides))
  return cfg


def test_statistics_written_once_and_checked_on_resume(tmp_path):
  task = task_lib.EhrTask(_cfg(), batch_size=8, workdir=str(tmp_path))
  stored = json.loads((tmp_path / task_lib.PREPROCESSING_FILE).read_text())
  assert stored["run"]["train_size"] == len(task.splits["train"])
  again = task_lib.EhrTask(_cfg(), batch_size=8, workdir=str(tmp_path))
  np.testing.assert_array_equal(again.examples[0]["values"], task.examples[0]["values"])
  with pytest.raises(ValueError, match="use a fresh workdir"):
    task_lib.EhrTask(_cfg(fold=1), batch_size=8, workdir=str(tmp_path))


@pytest.mark.parametrize("imbalance", ["weighted", "none"])
def test_loss_weights_positives(imbalance):
  task = task_lib.EhrTask(_cfg(imbalance=imbalance), batch_size=8)
  labels = task.data.labels[task.splits["train"]]
  expected_w = (labels == 0).sum() / labels.sum() if imbalance == "weighted" else 1.0
  assert task.pos_weight == pytest.approx(expected_w)
  logits = jnp.array([0.3, -1.0, 2.0, 0.5])
  batch = {"label": jnp.array([1.0, 0.0, 1.0, 0.0]), "_mask": jnp.array([1.0, 1.0, 0.0, 1.0])}
  loss, metrics = task.loss({"logits": logits}, batch)
  bce = np.asarray(optax.sigmoid_binary_cross_entropy(logits, batch["label"]))
  w = np.array([expected_w, 1.0, 0.0, 1.0])
  assert float(loss) == pytest.approx((w * bce).sum() / w.sum(), rel=1e-5)
  assert float(metrics["bce"]) == pytest.approx(bce[[0, 1, 3]].mean(), rel=1e-5)


def test_oversampling_balances_training_indices():
  task = task_lib.EhrTask(_cfg(imbalance="oversample"), batch_size=8)
  labels = task.data.labels[task.train_indices()]
  assert abs(labels.mean() - 0.5) < 0.1
  assert set(task.train_indices()) == set(task.splits["train"])


def test_token_batches_pad_to_few_shapes_and_evaluation_to_one():
  task = task_lib.EhrTask(_cfg(model="transformer", pad_multiple=32), batch_size=8)
  it = iter(task.train_dataset(8, seed=0))
  for _ in range(3):
    batch = next(it)
    length = batch["values"].shape[1]
    assert length % 32 == 0
    assert batch["token_mask"].sum(1).max() > length - 32  # no needless extra padding
    np.testing.assert_array_equal(batch["token_mask"], batch["mask"].max(-1))
  (val, test) = task.evaluators()
  from medjax.ehr.evaluation import batches
  shapes = {b["values"].shape for b in batches(task.examples, test.indices, 8,
                                               test.pad_multiple)}
  assert len(shapes) == 1


def test_collate_pads_visits_and_codes():
  items = [{"codes": np.ones((1, 3), np.int32), "visit_mask": np.ones(1, np.float32),
            "label": np.float32(1)},
           {"codes": np.ones((2, 5), np.int32), "visit_mask": np.ones(2, np.float32),
            "label": np.float32(0)}]
  batch = ex.collate(items, pad_multiple=16)
  assert batch["codes"].shape == (2, 2, 16)  # visits padded to a multiple of 16 // 8
  np.testing.assert_array_equal(batch["visit_mask"], [[1, 0], [1, 1]])
  assert batch["codes"][0].sum() == 3 and batch["codes"][1].sum() == 10


def test_bucketed_batches_cover_each_epoch_and_group_lengths():
  from medjax.ehr.bucketing import BucketedBatches
  rng = np.random.default_rng(0)
  lengths = rng.integers(1, 200, 100)
  indices = np.arange(1000, 1100)
  source = BucketedBatches(indices, lengths, batch_size=10, pool_batches=5, seed=3)
  assert source.per_epoch == 10
  epoch0 = [source[k] for k in range(10)]
  np.testing.assert_array_equal(np.sort(np.concatenate(epoch0)), indices)
  spread = np.mean([np.ptp(lengths[b - 1000]) for b in epoch0])
  assert spread < 0.5 * np.ptp(lengths)  # similar lengths within a batch
  epoch1 = [source[k] for k in range(10, 20)]
  assert not all(np.array_equal(a, b) for a, b in zip(epoch0, epoch1))
  again = BucketedBatches(indices, lengths, 10, 5, seed=3)
  np.testing.assert_array_equal(again[13], source[13])  # random access, deterministic
