"""generative.evaluate with fake generators: the real image for its mask, or noise."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.engine.errors import InputError
from medjax.generative import evaluate
from medjax.generative import metrics


class FakeGenerator:
  """The `sampling.Generator` duck type; `generate` is jit-able."""

  def __init__(self, masks, images, noise=False):
    self.config, self.num_classes, self.channels = None, 2, images.shape[-1]
    self.params = {"scale": np.float32(1.0)}
    self.masks, self.images, self.noise = jnp.asarray(masks), jnp.asarray(images), noise

  def generate(self, params, labels, key):
    if self.noise:  # uniform integer-hash noise of the key (jax.random compiles slowly)
      h = jnp.arange(labels.size * self.channels, dtype=jnp.uint32) * jnp.uint32(747796405)
      h = h + jax.random.key_data(key).sum(dtype=jnp.uint32)
      for _ in range(2):
        h = (h ^ (h >> 16)) * jnp.uint32(0x45D9F3B)
      noise = (h >> 8).astype(jnp.float32) / 2.0**24
      return noise.reshape(*labels.shape, self.channels) * params["scale"]
    # The real image whose mask is `labels` (every real mask is different).
    same = jnp.all(labels[:, None] == self.masks[None], axis=(2, 3))
    return self.images[jnp.argmax(same, axis=1)] * params["scale"]


def _real(n=21, size=8, seed=0):
  """Preprocessed examples: a bright rectangle (class 1) on a dark, slightly noisy field."""
  rng = np.random.default_rng(seed)
  examples = []
  for i in range(n):
    mask = np.zeros((size, size), np.int32)
    r, c = divmod(i, 5)
    mask[r:r + 3, c:c + 4] = 1
    image = 0.2 + 0.5 * mask[..., None] + rng.normal(0, 0.03, (size, size, 1))
    examples.append({"image": np.clip(image, 0, 1).astype(np.float32), "label": mask})
  return examples


def _pool(x):
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4)).reshape(b, -1)


def _pooled(images):
  """A small fixed feature map: 2x2 average pooling of the intensities and of their
  horizontal differences (smooth images against rough ones), flattened."""
  images = np.asarray(images)
  rough = np.abs(np.diff(images, axis=2, append=images[:, :, -1:]))
  return np.concatenate([_pool(images), _pool(rough)], axis=1)


@pytest.fixture(scope="module")
def real():
  return _real()


def _generators(real):
  masks = np.stack([e["label"] for e in real])
  images = np.stack([e["image"] for e in real])
  return FakeGenerator(masks, images), FakeGenerator(masks, images, noise=True)


def test_a_generator_of_the_real_image_scores_as_the_real_set(real):
  same, _ = _generators(real)
  fake = evaluate.generate_like(same, real, jax.random.key(0), batch_size=4)  # 21 = 5x4 + 1
  assert len(fake) == 21
  for f, r in zip(fake, real):
    np.testing.assert_array_equal(f["image"], r["image"])
    np.testing.assert_array_equal(f["mask"], r["label"])
  results = evaluate.score(real, fake, _pooled, batch_size=4)
  features = _pooled(np.stack([e["image"] for e in real])).astype(np.float64)
  assert (results["precision"], results["recall"]) == (1.0, 1.0)
  assert results["n_real"] == results["n_fake"] == 21
  assert abs(results["fid"]) < 1e-6
  # KID: every subset is the whole set, in another order, so an MMD of the set with itself:
  # not exactly 0 (U-statistic within, V-statistic across), but small (see the next test).
  np.testing.assert_allclose(results["kid_mean"], metrics.mmd2_unbiased(features, features),
                             rtol=1e-9)
  assert np.isfinite(results["kid_std"]) and abs(results["kid_mean"]) < 0.01


def test_a_noise_generator_scores_far_from_the_real_set(real):
  same, noise = _generators(real)
  key = jax.random.key(1)
  near = evaluate.evaluate_generator(same, real, _pooled, key, batch_size=4)
  far = evaluate.evaluate_generator(noise, real, _pooled, key, batch_size=4)
  assert far["kid_mean"] > 0.1 and far["kid_mean"] > 20 * abs(near["kid_mean"])
  assert far["fid"] > 1.0 and far["precision"] < 0.1
  fake = evaluate.generate_like(noise, real, key, batch_size=4)
  assert not np.allclose(fake[0]["image"], fake[4]["image"])  # one key per batch


def test_write_report_writes_the_metrics_and_the_pairs_figure(real, tmp_path):
  same, _ = _generators(real)
  fake = evaluate.generate_like(same, real[:3], jax.random.key(0), batch_size=4)
  results = {"kid_mean": np.float64(0.5), "kid_std": 0.1, "fid": float("nan"),
             "precision": 0.25, "recall": 1.0, "n_real": np.int64(3), "n_fake": 3}
  paths = evaluate.write_report(results, real[:3], fake, str(tmp_path / "out"))
  assert [p.rsplit("/", 1)[1] for p in paths] == ["sample_metrics.json", "pairs.png"]
  with open(paths[0], encoding="utf-8") as f:
    saved = json.load(f)
  assert saved == {"kid_mean": 0.5, "kid_std": 0.1, "fid": None, "precision": 0.25,
                   "recall": 1.0, "n_real": 3, "n_fake": 3}
  with open(paths[1], "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_generated_images_of_another_size_are_an_input_error(real):
  fake = [{"image": np.zeros((8, 8, 3), np.float32), "mask": e["label"]} for e in real]
  with pytest.raises(InputError, match=r"generated images are \(8, 8, 3\)"):
    evaluate.score(real, fake, _pooled)
  uneven = real[:2] + [{"image": np.zeros((6, 8, 1)), "label": np.zeros((6, 8), np.int32)}]
  with pytest.raises(InputError, match="masks: every example must have one size"):
    evaluate.generate_like(_generators(real)[0], uneven, jax.random.key(0))
