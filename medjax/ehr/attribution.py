"""Gradient x input of the recurrent models from the engine's predict function.

`WithAttribution(backbone)` behaves as `backbone` (its parameters under "backbone")
unless it is called with an `attribute` array (B,): it then also returns
`attribution`, `medjax.explain.grad_x_input` of the score attribute[i] * logit[i]
with respect to the `input_name` array (baseline 0, the training mean after
normalisation). The end-of-run report gets only a predict function, so the
attribution rides along in the outputs: a report batch with `attribute` compiles
once more, ordinary batches are unchanged. `--mode=explain` (medjax.ehr.explanation)
calls medjax.explain on the backbone directly.
"""

from __future__ import annotations

import flax.linen as nn

from medjax import explain


class WithAttribution(nn.Module):
  backbone: nn.Module
  input_name: str = "values"

  @nn.compact
  def __call__(self, *, train: bool = False, attribute=None, **inputs):
    outputs = self.backbone(**inputs, train=train)
    if attribute is None or self.is_initializing():
      return outputs
    model, variables = self.backbone.clone(parent=None), self.backbone.variables

    def score(x):
      out = model.apply(variables, **{**inputs, self.input_name: x}, train=False)
      return out["logits"] * attribute

    return {**outputs, "attribution": explain.grad_x_input(score, inputs[self.input_name])}
