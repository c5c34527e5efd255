import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.segmentation import losses as losses_lib

LOG = np.log
_STATIC = ("include_background", "batch_dice")


# The losses under jit, as in training (and one compilation per case, not per op).
losses = types.SimpleNamespace(
    cross_entropy=jax.jit(losses_lib.cross_entropy),
    soft_dice=jax.jit(losses_lib.soft_dice, static_argnames=_STATIC),
    dice_ce=jax.jit(losses_lib.dice_ce, static_argnames=_STATIC))


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _np_cross_entropy(logits, labels, mask, example_weight):
  p = _softmax(logits.astype(np.float64))
  total, count = 0.0, 0.0
  for b in range(labels.shape[0]):
    for idx in np.ndindex(*labels.shape[1:]):
      w = mask[(b,) + idx] * example_weight[b]
      total += -w * LOG(p[(b,) + idx][labels[(b,) + idx]])
      count += w
  return total / count


def _np_dice(p, y, m, num_classes, smooth, skip_bg):
  """Dice per class over the pixels of (p, y, m) (any leading shape)."""
  out = []
  for k in range(1 if skip_bg else 0, num_classes):
    pk, yk = p[..., k] * m, (y == k) * m
    out.append((2 * np.sum(pk * yk) + smooth) / (np.sum(pk) + np.sum(yk) + smooth))
  return np.array(out)


def _np_soft_dice(logits, labels, mask, example_weight, skip_bg, smooth, batch):
  p = _softmax(logits.astype(np.float64))
  k = logits.shape[-1]
  if batch:
    m = mask * example_weight.reshape((-1,) + (1,) * (mask.ndim - 1))
    return 1 - _np_dice(p, labels, m, k, smooth, skip_bg).mean()
  per_image = [1 - _np_dice(p[b], labels[b], mask[b], k, smooth, skip_bg).mean()
               for b in range(labels.shape[0])]
  return np.sum(example_weight * per_image) / np.sum(example_weight)


def _random_case(seed, spatial=(5, 6), k=3, b=3):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(b, *spatial, k)).astype(np.float32) * 2
  labels = rng.integers(0, k, (b, *spatial))
  mask = (rng.random((b, *spatial)) > 0.3).astype(np.float32)
  example_weight = np.array([1.0, 0.0, 1.0][:b])
  return logits, labels, mask, example_weight


@pytest.mark.slow
@pytest.mark.parametrize("seed,spatial", [(0, (5, 6)), (1, (3, 4, 2))])
def test_cross_entropy_matches_numpy(seed, spatial):
  logits, labels, mask, ew = _random_case(seed, spatial)
  got = losses.cross_entropy(logits, labels, mask, ew)
  np.testing.assert_allclose(got, _np_cross_entropy(logits, labels, mask, ew), rtol=1e-5)


@pytest.mark.parametrize("spatial", [(5, 6), (4, 3, 2)])  # 3 classes, 2D and 3D
@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize("skip_bg", [False, True])
def test_soft_dice_matches_numpy(batch, skip_bg, spatial):
  logits, labels, mask, ew = _random_case(2, spatial)
  got = losses.soft_dice(logits, labels, mask, ew, include_background=not skip_bg,
                         smooth=1e-5, batch_dice=batch)
  want = _np_soft_dice(logits, labels, mask, ew, skip_bg, 1e-5, batch)
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_hand_cases():
  # One image, two pixels, two classes: p(label) = 3/4 and 1/2.
  logits = np.array([[[0.0, LOG(3.0)], [0.0, 0.0]]])
  labels = np.array([[1, 0]])
  np.testing.assert_allclose(losses.cross_entropy(logits, labels),
                             (-LOG(0.75) + LOG(2)) / 2, rtol=1e-6)
  np.testing.assert_allclose(losses.cross_entropy(logits, labels, np.array([[1, 0]])),
                             -LOG(0.75), rtol=1e-6)
  # Hard predictions [1, 1, 0, 0] against labels [1, 0, 0, 0].
  hard = 100.0 * jax.nn.one_hot(np.array([[1, 1, 0, 0]]), 2)
  labels = np.array([[1, 0, 0, 0]])
  fg, bg = 2 * 1 / (2 + 1), 2 * 2 / (2 + 3)
  np.testing.assert_allclose(losses.soft_dice(hard, labels), 1 - fg, rtol=1e-5)
  np.testing.assert_allclose(losses.soft_dice(hard, labels, include_background=True),
                             1 - (fg + bg) / 2, rtol=1e-5)
  np.testing.assert_allclose(losses.dice_ce(hard, labels, dice_weight=0.5, ce_weight=0.0),
                             0.5 * (1 - fg), rtol=1e-5)
  # Masking out the false positive makes the prediction perfect.
  np.testing.assert_allclose(losses.soft_dice(hard, labels, np.array([[1, 0, 1, 1]])),
                             0.0, atol=1e-5)


def test_padded_examples_and_ignored_pixels_contribute_nothing():
  logits, labels, mask, _ = _random_case(3, b=2)
  real_logits, real_labels, real_mask = logits[:1], labels[:1], mask[:1]
  # Second example is padding with garbage; ignored pixels carry label 255.
  labels = labels.copy()
  labels[1] = 255
  labels[0][mask[0] == 0] = 255
  ew = np.array([1.0, 0.0])
  for fn in (losses.cross_entropy, losses.soft_dice, losses.dice_ce):
    np.testing.assert_allclose(fn(logits, labels, mask, ew),
                               fn(real_logits, real_labels, real_mask), rtol=1e-6)
  np.testing.assert_allclose(
      losses.soft_dice(logits, labels, mask, ew, batch_dice=True),
      losses.soft_dice(real_logits, real_labels, real_mask, batch_dice=True), rtol=1e-6)


@pytest.mark.parametrize("batch_dice", [False, True])
def test_gradient_is_zero_on_ignored_pixels(batch_dice):
  logits, labels, mask, ew = _random_case(4)
  grads = jax.grad(lambda x: losses.dice_ce(x, labels, mask, ew, batch_dice=batch_dice))(
      jnp.asarray(logits))
  ignored = (mask == 0) | (ew[:, None, None] == 0)
  assert np.all(np.asarray(grads)[ignored] == 0)
  assert np.all(np.isfinite(grads)) and np.any(np.asarray(grads)[~ignored] != 0)


def test_empty_batch_is_zero_and_finite():
  logits, labels, mask, _ = _random_case(5)
  assert float(losses.cross_entropy(logits, labels, np.zeros_like(mask))) == 0.0
  value = losses.soft_dice(logits, labels, mask, np.zeros(3))
  assert float(value) == 0.0


def test_dice_per_class_matches_numpy_3d():
  logits, labels, mask, ew = _random_case(6, (4, 3, 2), k=4)
  got = jax.jit(losses_lib.per_class_dice)(logits, labels, mask, ew)
  m = mask * ew[:, None, None, None]  # pooled over the batch's valid pixels
  want = _np_dice(_softmax(logits.astype(np.float64)), labels, m, 4, 1e-5, skip_bg=True)
  assert sorted(got) == ["dice_class_1", "dice_class_2", "dice_class_3"]
  np.testing.assert_allclose([got[f"dice_class_{k}"] for k in (1, 2, 3)], want, rtol=1e-5)


def test_deep_supervision_loss_weights_and_downsampling():
  rng = np.random.default_rng(7)
  shapes = [(8, 6, 5), (4, 3, 3), (2, 2, 2)]
  outputs = tuple(rng.normal(size=(2, *s, 3)).astype(np.float32) for s in shapes)
  labels = rng.integers(0, 3, (2, 8, 6, 5))
  mask = (rng.random((2, 8, 6, 5)) > 0.2).astype(np.float32)
  ew = np.array([1.0, 0.5])
  loss = jax.jit(functools.partial(losses_lib.deep_supervision_loss,
                                   loss_fn=losses_lib.cross_entropy))
  got = loss(outputs, labels, mask=mask, example_weight=ew)
  weights = np.array([4, 2, 1]) / 7  # 1, 1/2, 1/4 normalised
  np.testing.assert_allclose(losses_lib.deep_supervision_weights(3), weights)
  want = sum(w * _np_cross_entropy(o, labels[:, ::f, ::f, ::f], mask[:, ::f, ::f, ::f], ew)
             for w, o, f in zip(weights, outputs, (1, 2, 4)))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # A single array is the plain loss; a wrong scale is refused.
  np.testing.assert_allclose(loss(outputs[0], labels, mask=mask, example_weight=ew),
                             _np_cross_entropy(outputs[0], labels, mask, ew), rtol=1e-5)
  with pytest.raises(ValueError, match="sampled every 2"):
    losses_lib.deep_supervision_loss((outputs[0], outputs[2]), labels,
                                     losses_lib.cross_entropy)
