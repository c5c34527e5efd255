"""`--mode=explain` of a classification run: heat maps over chosen images, and their checks.

Reads examples of `config.explain.split` (the first `examples`, or `indices`), explains
the logit of `config.explain.target` (-1: each image's predicted class, or for findings
its most probable finding) with `config.explain.method` under the best checkpoint, and
writes `<workdir>/explain/`: `<method>_overlays.png` (2D; one `<method>_<k>.png` of
orthogonal slices per volume in 3D), `gradcam_overlays.png` / `gradcam_<k>.png` (the
models mark their feature map), `faithfulness.png`, `attributions.npz` and
`checks.json` (`explain.report`: IG completeness, randomisation, deletion / insertion
in probability, plus the examples, their labels and probabilities).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from medjax import explain
from medjax.classification.data import sources
from medjax.engine.errors import InputError
from medjax.explain import mode
from medjax.explain import report


def read_examples(task, split: str, explain_config) -> dict:
  """{"image": (N, *S, C), "label", "ids", "indices"} of the chosen examples of `split`."""
  source, indices = mode.open_split(lambda s: sources.source_of(task.builder, s), split,
                                    explain_config)
  examples = [task.preprocess(source[i]) for i in indices]
  ids = [source[i]["id"] for i in indices]
  key = "targets" if task.info.multi_label else "label"
  return {"image": np.stack([e["image"] for e in examples]).astype(np.float32),
          "label": np.stack([e[key] for e in examples]),
          "ids": [i.decode() if isinstance(i, bytes) else str(i) for i in ids],
          "indices": indices}


def probability_output(targets, multi_label: bool):
  """Outputs -> the probability of each example's target (sigmoid for findings)."""
  if not multi_label:
    return explain.class_output(targets, probability=True)
  logit = explain.class_output(targets)
  return lambda outputs: jax.nn.sigmoid(logit(outputs))


def _titles(task, data, probs, targets) -> list[str]:
  classes = task.info.classes
  out = []
  for i, (label, p, t) in enumerate(zip(data["label"], probs, targets)):
    true = ("|".join(classes[k] for k in np.flatnonzero(label > 0.5)) or "none"
            if task.info.multi_label else classes[int(label)])
    out.append(f"{data['ids'][i][:18]}\ntrue {true}\np({classes[t]})={p[t]:.2f}")
  return out


def gradcam_figures(out_dir, apply, variables, x, output, titles, split) -> list[str]:
  """Grad-CAM figures of the same examples; none if the model marks no feature map."""
  try:
    cam = np.asarray(explain.gradcam(apply, variables, x, output))
  except InputError:
    return []
  return mode.draw_maps(os.path.join(out_dir, "gradcam"), np.asarray(x), cam, titles,
                        signed=False, title=f"gradcam ({split})")


def explain_run(config, workdir: str, task) -> dict:
  """Writes `<workdir>/explain/` (see the module doc); returns the headline numbers."""
  e = config.explain
  method = explain.check_method(e.method)
  data = read_examples(task, e.split, e)
  x = jnp.asarray(data["image"])
  batch = {"image": data["image"]}
  variables, random_variables = mode.trained_and_random(config, workdir, task, e.seed)
  apply = mode.model_apply(task, batch, "image")
  probs = task.probabilities(apply(variables, x))
  target = mode.check_target(e.target, probs.shape[1])
  targets = probs.argmax(1) if target == -1 else np.full(len(probs), target)
  output = explain.class_output(jnp.asarray(targets, jnp.int32))
  attr, checks = report.explain_and_check(
      apply, variables, random_variables, x, output, key=jax.random.key(e.seed),
      method=method, ig_steps=e.ig_steps, faithfulness_steps=e.faithfulness_steps,
      random_seeds=e.random_seeds,
      probability=probability_output(jnp.asarray(targets, jnp.int32), task.info.multi_label),
      **report.method_options(e, task.config.spatial_dims))
  out_dir = os.path.join(workdir, mode.OUT_DIR)
  os.makedirs(out_dir, exist_ok=True)
  titles = _titles(task, data, probs, targets)
  files = mode.draw_maps(os.path.join(out_dir, method), data["image"],
                         mode.channel_sum(attr), titles, signed=method != "gradcam",
                         title=f"{method} ({e.split})")
  if method != "gradcam":
    files += gradcam_figures(out_dir, apply, variables, x, output, titles, e.split)
  np.savez_compressed(os.path.join(out_dir, "attributions.npz"), image=data["image"],
                      attributions=attr, targets=targets, probabilities=probs)
  extra = {"split": e.split, "indices": data["indices"], "ids": data["ids"],
           "classes": list(task.info.classes), "targets": targets.tolist(),
           "labels": np.asarray(data["label"]).tolist(), "probabilities": probs.tolist(),
           "files": [os.path.basename(f) for f in files + [mode.CURVES_FILE]]}
  return mode.write_checks(checks, out_dir, extra, title=f"{method}: deletion / insertion")
