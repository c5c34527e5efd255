"""Loading a trained state from a workdir for prediction (no optimiser steps)."""

from __future__ import annotations


from medjax.engine import checkpoint as checkpoint_lib
from medjax.engine import mesh as mesh_lib
from medjax.engine import steps


def load_for_prediction(config, workdir: str, task, best: bool = True):
  """Returns (state, predict) with predict(batch) -> host outputs.

  Takes the best checkpoint when one was kept (and `best`), else the latest.
  """
  mesh = mesh_lib.make_mesh(config.mesh)
  _, _, abstract = steps.build(task, config, mesh)
  state = checkpoint_lib.restore_state(workdir, abstract, prefer_best=best)
  predict = steps.make_predict_fn(task, mesh)
  return state, lambda batch: predict(state, batch)
