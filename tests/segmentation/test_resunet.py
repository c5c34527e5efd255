import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import segmentation as configs
from medjax.engine.errors import InputError
from medjax.segmentation import resunet
from medjax.segmentation import task as task_lib


def _conv(cin, cout, k, d):
  return cin * cout * k**d + cout


def _residual_unit(cin, cout, stride, subunits, d, last_conv_only=False):
  """MONAI ResidualUnit: convs + one PReLU slope per conv with an activation."""
  total, width = 0, cin
  for _ in range(max(1, subunits)):
    total += _conv(width, cout, 3, d) + 1
    width = cout
  total -= 1 if last_conv_only else 0
  if stride != 1:
    total += _conv(cin, cout, 3, d)
  elif cin != cout:
    total += _conv(cin, cout, 1, d)
  return total


def monai_unet_params(cin, cout, channels, strides, r, d):
  """Parameters of monai.networks.nets.UNet (instance norm: none; PReLU: 1)."""
  n, total = len(channels), 0
  for i, stride in enumerate(strides):
    inc = cin if i == 0 else channels[i - 1]
    outc = cout if i == 0 else channels[i - 1]
    upc = channels[i] + (channels[i + 1] if i == n - 2 else channels[i])
    top = i == 0
    if r > 0:
      total += _residual_unit(inc, channels[i], stride, r, d)
      total += _conv(upc, outc, 3, d) + 1 + _residual_unit(outc, outc, 1, 1, d, top)
    else:
      total += _conv(inc, channels[i], 3, d) + 1 + _conv(upc, outc, 3, d) + (0 if top else 1)
  last = channels[-1]
  if r > 0:
    return total + _residual_unit(channels[-2], last, 1, r, d)
  return total + _conv(channels[-2], last, 3, d) + 1


def _shapes(model, shape):
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x), x)
  out = jax.eval_shape(lambda v, x: model.apply(v, x), variables, x)
  return variables, out


@pytest.mark.parametrize("d,cin,cout,channels,strides,r,size", [
    (2, 1, 2, (4, 8, 16), (2, 2), 2, (8, 12)),
    (2, 3, 4, (4, 8, 16, 32), (2, 2, 2), 0, (16, 8)),
    (2, 1, 2, (4, 8), (3,), 1, (6, 9)),
    (3, 1, 3, (4, 8, 16), (2, 1), 3, (4, 6, 8)),
    (3, 2, 2, (4, 4, 8), (), 2, (4, 4, 8)),  # () -> stride 2; equal widths: identity skip
])
def test_parameter_count_and_output_shape(d, cin, cout, channels, strides, r, size):
  model = resunet.ResUNet(cout, d, channels, strides, r)
  variables, out = _shapes(model, (2, *size, cin))
  assert set(variables) == {"params"}  # instance norm without affine: no statistics
  count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables))
  assert count == monai_unet_params(cin, cout, channels, strides or (2,) * (len(channels) - 1),
                                    r, d)
  assert out.shape == (2, *size, cout) and out.dtype == jnp.float32


def test_batch_norm_adds_scale_and_bias_per_norm():
  plain, _ = _shapes(resunet.ResUNet(2, 2, (4, 8), (2,), 1), (1, 4, 4, 1))
  batch, _ = _shapes(resunet.ResUNet(2, 2, (4, 8), (2,), 1, norm="batch"), (1, 4, 4, 1))
  count = lambda v: sum(int(np.prod(p.shape)) for p in jax.tree.leaves(v["params"]))
  # norms after: down unit (4), bottom unit (8), up transposed conv (2); not the last conv
  assert count(batch) - count(plain) == 2 * (4 + 8 + 2)


def _transposed_reference(x, kernel, stride):
  """torch ConvTranspose (padding 1, output_padding stride-1) by scattering, 1 channel."""
  k = kernel.shape[0]
  w = kernel[::-1, ::-1, 0, 0]  # flax's kernel is the flipped torch one
  h, wd = x.shape
  out = np.zeros((h * stride + k, wd * stride + k))  # room for output_padding
  for i in range(h):
    for j in range(wd):
      out[i * stride:i * stride + k, j * stride:j * stride + k] += x[i, j] * w
  return out[1:1 + h * stride, 1:1 + wd * stride]


@pytest.mark.parametrize("stride,upsample", [(2, "subpixel"), (3, "subpixel"),
                                             (2, "transpose")])
def test_transposed_conv_matches_torch_definition(stride, upsample):
  unit = resunet.ConvUnit(1, 2, stride, transposed=True, conv_only=True, upsample=upsample)
  x = np.random.default_rng(stride).normal(size=(1, 3, 4, 1)).astype(np.float32)
  variables = unit.init(jax.random.key(0), x, False)
  kernel = np.asarray(variables["params"]["conv"]["kernel"])
  y = np.asarray(unit.apply(variables, x, False))[0, :, :, 0]
  np.testing.assert_allclose(y, _transposed_reference(x[0, :, :, 0], kernel, stride),
                             rtol=1e-5, atol=1e-5)


def test_size_not_divisible_by_strides_names_the_fix():
  model = resunet.ResUNet(2, 2, (4, 8, 16), (2, 2), 1)
  with pytest.raises(InputError, match=r"divisible by 4.*\(2, 2\).*\(12, 10\)"):
    _shapes(model, (1, 12, 10, 1))
  with pytest.raises(InputError, match="strides: need 2"):
    _shapes(resunet.ResUNet(2, 2, (4, 8, 16), (2,), 1), (1, 8, 8, 1))


def test_config_selects_the_residual_unet():
  c = configs.get_config("lung_ct")
  c.task.model.name = "resunet"
  c.task.model.norm = "instance"
  model = task_lib.make_model(c.task)
  assert isinstance(model, resunet.ResUNet)
  assert model.channels == tuple(c.task.model.features) and model.num_res_units == 2
  c.task.model.strides = (2, 2)
  with pytest.raises(InputError, match="strides"):
    task_lib.make_model(c.task)
  c.task.model.name = "resnet"
  with pytest.raises(InputError, match="model.name"):
    task_lib.make_model(c.task)
