"""`--mode=explain` of a segmentation run: what in the image makes the model segment a region.

For each chosen example of `config.explain.split` (the first `examples`, or `indices`)
the score explained is `explain.region_output(c, mask)`: the sum of class c's logits
over the region the model predicts as c (c = `config.explain.target`, -1: class 1, the
first foreground class). An example where nothing is predicted as c falls back to its
labelled c region, then to its whole image (`checks.json` says which, per example).
Deletion / insertion curves score the mean probability of c over that region.

The model sees a crop of model size: in 3D the training patch (`task.patch_size`), in 2D
the sliding window (`task.sliding_window.roi`) when one is set, centred on the labelled
c region (else any foreground, else the image centre); otherwise 2D images are explained
whole (zero-padded to a common size). Writes `<workdir>/explain/`:
`<method>_overlays.png` (2D) or `<method>_<k>.png` (orthogonal slices through the
region, 3D), `faithfulness.png`, `attributions.npz` (crops, regions, attributions)
and `checks.json`. The U-Net marks no feature map, so Grad-CAM is refused.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from medjax import explain
from medjax.explain import mode
from medjax.explain import report
from medjax.segmentation.volumes import patches

DEFAULT_CLASS = 1  # target -1: the first foreground class


def crop_size(task_config, shapes) -> tuple[tuple[int, ...], bool]:
  """(the explained size, whether crops are centred): the 3D patch, the 2D sliding
  window, or the largest 2D image (corner-aligned, zero-padded)."""
  if task_config.spatial_dims == 3:
    return tuple(int(s) for s in task_config.patch_size), True
  roi = tuple(int(s) for s in task_config.sliding_window.roi)
  if any(roi):
    return roi, True
  return tuple(int(s) for s in np.max(np.asarray(shapes), axis=0)), False


def region_centre(label: np.ndarray, class_id: int) -> np.ndarray:
  """Centroid of `class_id` in `label`, else of any foreground, else the centre."""
  for region in (label == class_id, label > 0):
    if region.any():
      return np.round(np.argwhere(region).mean(0)).astype(int)
  return np.asarray(label.shape) // 2


def crop(example: dict, size, centred: bool, class_id: int) -> dict:
  """The example's image, label and valid cropped / zero-padded to `size`."""
  label = example["label"]
  start = (region_centre(label, class_id) - np.asarray(size) // 2 if centred
           else np.zeros(label.ndim, int))
  out = patches.extract(example["image"], label, start, size)
  inside = patches.extract(np.asarray(example["valid"], np.float32)[..., None], label, start,
                           size)
  out["valid"] = out["valid"] * inside["image"][..., 0]
  return out


def split_source(task, split: str):
  """The random-access source of `split` (the task's own when it opened it)."""
  if split in task.config.eval_splits:
    return task.eval_sources[split]
  if split == task.config.train_split:
    return task.train_source
  return task._source(split)  # pylint: disable=protected-access


def _read(task, source, index: int) -> dict:
  """One preprocessed example {"image", "label", "valid", "id"} (a whole case in 3D)."""
  raw = source[index]
  if task.config.spatial_dims == 3:
    from medjax.segmentation.volumes import pipeline  # pylint: disable=import-outside-toplevel
    case = pipeline.case(raw)
    return {"image": case["image"], "label": case["label"], "id": case["id"],
            "valid": np.ones(case["label"].shape, np.float32)}
  example = task.preprocess(raw)
  ident = raw.get("id", str(index))
  return {**example, "id": ident.decode() if isinstance(ident, bytes) else str(ident)}


def read_examples(task, split: str, explain_config, class_id: int) -> dict:
  """Stacked crops {"image", "label", "valid"} of the chosen examples, "ids", "indices"."""
  source, indices = mode.open_split(lambda s: split_source(task, s), split, explain_config)
  examples = [_read(task, source, i) for i in indices]
  size, centred = crop_size(task.config, [e["label"].shape for e in examples])
  crops = [crop(e, size, centred, class_id) for e in examples]
  out = {k: np.stack([c[k] for c in crops]) for k in ("image", "label", "valid")}
  return {**out, "ids": [e["id"] for e in examples], "indices": indices}


def regions(predicted, label, valid, class_id: int) -> tuple[np.ndarray, list[str]]:
  """Per example the predicted `class_id` region, else the labelled one, else the
  whole valid image; and which of "predicted" / "label" / "image" each is."""
  masks, kinds = [], []
  for p, y, v in zip(predicted, label, valid):
    for kind, region in (("predicted", p == class_id), ("label", y == class_id),
                         ("image", np.ones_like(p, bool))):
      region = region & (v > 0)
      if region.any():
        break
    masks.append(region)
    kinds.append(kind)
  return np.stack(masks).astype(np.float32), kinds


def mean_probability(class_id: int, mask):
  """Outputs (B, *S, K) -> mean softmax probability of `class_id` over `mask` (B, *S)."""
  m = jnp.asarray(mask, jnp.float32)
  axes = tuple(range(1, m.ndim))
  count = jnp.maximum(jnp.sum(m, axis=axes), 1.0)
  return lambda outputs: jnp.sum(jax.nn.softmax(outputs, -1)[..., class_id] * m,
                                 axis=axes) / count


def _norm_note(task_config) -> dict:
  """A note for checks.json where IG's zero baseline is ill-conditioned for the model."""
  if task_config.model.norm != "instance":
    return {}
  return {"note": "model.norm=instance: instance normalisation makes the U-Net nearly "
                  "invariant to the input's scale, so f(alpha x) changes only near alpha=0, "
                  "where a near-constant image is divided by ~sqrt(eps); integrated "
                  "gradients from the zero baseline then has a large completeness gap"}


def explain_run(config, workdir: str, task) -> dict:
  """Writes `<workdir>/explain/` (see the module doc); returns the headline numbers."""
  e = config.explain
  method = explain.check_method(e.method)
  target = mode.check_target(e.target, task.config.num_classes)
  class_id = DEFAULT_CLASS if target == -1 else target
  if task.config.spatial_dims == 3:
    task.read_preprocessing(workdir)
  data = read_examples(task, e.split, e, class_id)
  x = jnp.asarray(data["image"])
  variables, random_variables = mode.trained_and_random(config, workdir, task, e.seed)
  apply = mode.model_apply(task, {"image": data["image"]}, "image")
  predicted = np.asarray(apply(variables, x)).argmax(-1)
  mask, kinds = regions(predicted, data["label"], data["valid"], class_id)
  attr, checks = report.explain_and_check(
      apply, variables, random_variables, x, explain.region_output(class_id, mask),
      key=jax.random.key(e.seed), method=method, ig_steps=e.ig_steps,
      faithfulness_steps=e.faithfulness_steps, random_seeds=e.random_seeds,
      probability=mean_probability(class_id, mask),
      **report.method_options(e, task.config.spatial_dims))
  out_dir = os.path.join(workdir, mode.OUT_DIR)
  os.makedirs(out_dir, exist_ok=True)
  sizes = mask.reshape(len(mask), -1).sum(1).astype(int)
  titles = [f"{i[:18]}\nclass {class_id}: {kind} region\n{n} px" for i, kind, n in
            zip(data["ids"], kinds, sizes)]
  files = mode.draw_maps(os.path.join(out_dir, method), data["image"],
                         mode.channel_sum(attr), titles, signed=True,
                         title=f"{method} ({e.split}, class {class_id})",
                         centres=[region_centre(m, 1) for m in mask])
  np.savez_compressed(os.path.join(out_dir, "attributions.npz"), image=data["image"],
                      label=data["label"], valid=data["valid"], predicted=predicted, region=mask,
                      attributions=attr)
  extra = {"split": e.split, "indices": data["indices"], "ids": data["ids"],
           **_norm_note(task.config), "class_id": class_id,
           "crop_shape": list(data["image"].shape[1:-1]),
           "region": kinds, "region_size": sizes.tolist(),
           "files": [os.path.basename(f) for f in files + [mode.CURVES_FILE]]}
  return mode.write_checks(checks, out_dir, extra,
                           title=f"{method}, class {class_id}: deletion / insertion")
