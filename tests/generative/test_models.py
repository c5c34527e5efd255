import einops
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.generative import models


def _init(module, *args, **kw):
  return jax.jit(lambda: module.init(jax.random.key(0), *args, **kw))()


@pytest.mark.slow  # ~10-40 s: the SPADE generator's compile
def test_generator_images_are_in_0_1_at_any_size_and_follow_the_label_map():
  gen = models.SpadeGenerator(out_channels=2, features=(8, 4, 4), spade_hidden=4)
  onehot = jax.nn.one_hot(jnp.zeros((2, 13, 10), jnp.int32).at[:, 3:9, 2:6].set(1), 2)
  noise = jnp.ones((2, 5))
  variables = _init(gen, onehot, noise)
  apply = jax.jit(gen.apply)
  out = apply(variables, onehot, noise)
  assert out.shape == (2, 13, 10, 2)  # padded to a multiple of 4 and cropped back
  assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
  other = apply(variables, jax.nn.one_hot(jnp.zeros((2, 13, 10), jnp.int32), 2), noise)
  assert float(jnp.abs(out - other).max()) > 1e-4  # the image depends on the mask


def test_space_to_depth_matches_einops_in_2d_and_3d():
  x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
  expected = einops.rearrange(x, "b (h p) (w q) c -> b h w (p q c)", p=2, q=2)
  np.testing.assert_array_equal(models._space_to_depth(x), expected)
  v = jnp.arange(2 * 4 * 2 * 6, dtype=jnp.float32).reshape(1, 4, 2, 6, 2)
  assert models._space_to_depth(v).shape == (1, 2, 1, 3, 16)


def test_upsample_repeats_each_pixel():
  x = jnp.asarray([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
  np.testing.assert_array_equal(models._upsample(x)[0, :, :, 0],
                                np.kron([[1.0, 2.0], [3.0, 4.0]], np.ones((2, 2))))


@pytest.mark.slow  # compiles the whole GAN's init (~20 s)
def test_gan_model_holds_generator_ema_twin_and_multiscale_discriminator():
  model = models.GanModel(num_classes=3, out_channels=1, generator_features=(4, 4),
                          spade_hidden=4, discriminator_features=(4, 8), num_scales=2)
  label, noise = jnp.zeros((2, 8, 8), jnp.int32), jnp.zeros((2, 3))
  variables = _init(model, label, noise)
  assert set(variables["params"]) == {"generator", "generator_ema", "discriminator"}
  assert "discriminator" in variables["batch_stats"]  # spectral-norm power iterations
  outputs = model.apply(variables, jnp.zeros((2, 8, 8, 1)), label,
                        method=models.GanModel.discriminate)
  assert len(outputs) == 2
  (logits0, feats0), (logits1, _) = outputs
  assert logits0.shape == (2, 4, 4, 1) and logits1.shape == (2, 2, 2, 1)
  assert [f.shape[-1] for f in feats0] == [4, 8]


@pytest.mark.slow  # 3D compiles (~20-60 s)
def test_the_same_networks_run_on_volumes():
  model = models.GanModel(num_classes=2, out_channels=1, generator_features=(4, 4),
                          spade_hidden=2, discriminator_features=(2, 4), num_scales=1)
  label = jnp.zeros((1, 6, 8, 4), jnp.int32).at[:, 2:4, 2:6, 1:3].set(1)
  variables = _init(model, label, jnp.zeros((1, 2)))
  fake = model.apply(variables, label, jnp.zeros((1, 2)))
  assert fake.shape == (1, 6, 8, 4, 1)
  ((logits, _),) = model.apply(variables, fake, label, method=models.GanModel.discriminate)
  assert logits.shape == (1, 3, 4, 2, 1)
