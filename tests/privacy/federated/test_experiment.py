"""Round selection on validation AUROC (local and centralised training)."""

import types

import numpy as np
import pytest

from medjax.engine.errors import InputError
from medjax.privacy.federated import experiment


class _FakeTrainer:
  """Counts rounds; its parameters are the round number."""

  def __init__(self):
    self.round, self.kept = 0, None

  def train(self, steps):
    self.round += 1
    return {"loss": 1.0 / self.round}

  def params(self):
    return {"w": np.array(self.round)}

  def set_params(self, params):
    self.kept = int(params["w"])


@pytest.mark.parametrize("scores, best_round", [
    ([0.6, 0.7, 0.65], 2),
    ([np.nan, np.nan, 0.5, 0.4], 3),  # undefined AUROCs never beat a defined one
    ([np.nan, np.nan], 2),  # never defined (no death in validation): the latest round
])
def test_best_round_is_kept(scores, best_round):
  trainer, values = _FakeTrainer(), iter(scores)
  fed = types.SimpleNamespace(rounds=len(scores), local_steps=3)
  out = experiment.train_selected(trainer, fed, lambda: next(values))
  assert out["best_round"] == best_round == trainer.kept


def test_modes_are_checked():
  assert experiment.parse_modes("fedprox, local") == ["fedprox", "local"]
  with pytest.raises(InputError, match="modes=''"):
    experiment.parse_modes("")
