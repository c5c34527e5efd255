"""Image classifiers for 2D and 3D: ResNet-18/50, DenseNet-121 and the seed's small CNN.

`make_model(name, num_outputs, spatial_dims, dropout, dtype, **kwargs)` builds one.
Every model is called as

    logits, updates = model.apply(variables, image, train=True,
                                  rngs={"dropout": key}, mutable=["batch_stats"])

with `image` (B, *spatial, C) channels-last float32; `logits` are float32
(B, num_outputs) whatever `dtype` (the convolutions run in `dtype`; parameters,
BatchNorm and the head are float32). BatchNorm uses the running averages when
`train=False` (momentum 0.9); dropout sits before the head and is active only
with `train=True`. One head serves every task: softmax over the logits
(single-label, 2 or more classes) or a sigmoid per logit (multi-label findings).

Grad-CAM: each model marks its last convolutional feature map, before global
pooling, with `medjax.explain.mark_features`, which sows it as
`intermediates/features` (B, *spatial', C') and lets `medjax.explain.gradcam`
take the gradient there:

    logits, state = model.apply(variables, image, train=False,
                                mutable=["intermediates"])
    features = state["intermediates"]["features"][0]
    cams = explain.gradcam(functools.partial(model.apply, train=False), variables,
                           image, explain.class_output(target))

Keyword arguments (`config.task.model.<field>`): `width` (channel multiplier,
default 1.0) for every model; `small_input` (3^d stride-1 stem without max
pooling, for ~28-64 pixel inputs such as MedMNIST) for the ResNets and
DenseNet; the architecture fields of `DenseNet` (growth_rate, block_config, ...)
and `SeedCNN` (features, hidden).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp

from medjax.classification.models import densenet, resnet, seed_cnn
from medjax.engine.errors import InputError
from medjax.segmentation import conv3d

MODELS: dict[str, tuple[Callable[..., nn.Module], type[nn.Module]]] = {
    "resnet18": (resnet.resnet18, resnet.ResNet),
    "resnet50": (resnet.resnet50, resnet.ResNet),
    "densenet121": (densenet.densenet121, densenet.DenseNet),
    "seed_cnn": (seed_cnn.SeedCNN, seed_cnn.SeedCNN),
}
# Fields make_model sets itself, or that the preset fixes (the ResNet block layout).
_RESERVED = ("num_outputs", "spatial_dims", "dropout", "dtype", "block", "stage_sizes",
             "parent", "name")


def make_model(name: str, num_outputs: int, spatial_dims: int = 2, dropout: float = 0.0,
               dtype=jnp.float32, **kwargs) -> nn.Module:
  """The classifier `name` ("resnet18", "resnet50", "densenet121", "seed_cnn")."""
  if name not in MODELS:
    raise InputError(f"config.task.model.name: unknown model {name!r}; "
                     f"known: {', '.join(MODELS)}")
  if spatial_dims not in (2, 3):
    raise InputError(f"config.task.model.spatial_dims must be 2 or 3, got {spatial_dims!r}")
  if not 0.0 <= dropout < 1.0:
    raise InputError(f"config.task.model.dropout must be in [0, 1), got {dropout!r}")
  build, cls = MODELS[name]
  allowed = sorted(f.name for f in dataclasses.fields(cls) if f.name not in _RESERVED)
  unknown = sorted(set(kwargs) - set(allowed))
  if unknown:
    raise InputError(f"config.task.model: {', '.join(unknown)} not a field of {name}; "
                     f"its fields: {', '.join(allowed)}")
  if kwargs.get("width", 1.0) <= 0:
    raise InputError(f"config.task.model.width must be > 0, got {kwargs['width']!r}")
  if "conv_impl" in kwargs:  # "auto": 3D convolutions as 2D slices on the CPU
    kwargs["conv_impl"] = conv3d.resolve(kwargs["conv_impl"])
    conv3d.conv_fn(kwargs["conv_impl"])  # an unknown name stops here, naming conv_impl
  return build(num_outputs, spatial_dims=spatial_dims, dropout=dropout, dtype=dtype,
               **kwargs)
