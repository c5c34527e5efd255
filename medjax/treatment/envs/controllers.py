"""simglucose's basal-bolus controller (BBController) in JAX.

basal = u2ss * BW / 6000 U/min, the steady-state rate. At a step whose reported
meal (mean announced carbohydrate, g/min) is positive the bolus is
meal * sample_time / CR, plus (CGM - target) / CF when CGM > 150, spread over
the step (divided by sample_time) as simglucose does.
"""

from __future__ import annotations

import jax.numpy as jnp

from medjax.treatment.envs import t1d_model
from medjax.treatment.envs.params import PatientParams, QuestParams


def basal_bolus(p: PatientParams, quest: QuestParams, cgm, meal, sample_time: int,
                target: float = 140.0):
  """[basal, bolus] in U/min for one patient's CGM reading and reported meal."""
  basal = t1d_model.basal_rate(p)
  correction = jnp.where(cgm > 150, (cgm - target) / quest.CF, 0.0)
  bolus = jnp.where(meal > 0, meal * sample_time / quest.CR + correction, 0.0)
  return jnp.stack([basal, bolus / sample_time])
