"""Per-input gradient attributions for the recurrent models, inside `model.apply`.

`WithAttribution(backbone)` behaves as `backbone` unless it is called with an
`attribute` array (B,): it then also returns `gradient`, d(attribute . logits)/d(values),
and `attribution` = gradient * values (gradient x input against the training mean, which
is 0 after normalisation). Because the extra output depends only on whether the batch
carries an `attribute` key, the trainer's jitted predict function serves both: a report
batch with `attribute` compiles once more, ordinary batches are unchanged.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class WithAttribution(nn.Module):
  backbone: nn.Module
  input_name: str = "values"

  @nn.compact
  def __call__(self, *, train: bool = False, attribute=None, **inputs):
    outputs = self.backbone(**inputs, train=train)
    if attribute is None:
      return outputs

    def weighted_logits(module, x):
      return jnp.sum(module(**{**inputs, self.input_name: x}, train=False)["logits"]
                     * attribute)

    (gradient,) = nn.grad(weighted_logits, self.backbone, inputs[self.input_name])
    return {**outputs, "gradient": gradient,
            "attribution": gradient * inputs[self.input_name]}
