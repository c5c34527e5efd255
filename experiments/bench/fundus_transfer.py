r"""A fundus model on other resolutions: DRIVE validation images resampled, scored as is,
with field-of-view scale normalisation, and with test-time flips.

A new fundus camera mostly changes the image size, so the vessels' width in pixels.
This proxy resamples the DRIVE validation images (37-40 by default: the drive
preset's val split), their vessel masks (nearest) and FOV masks (nearest) by each
--scales factor into <out_dir>/scale_<s>/, then runs the segmentation experiment's
own `--mode=evaluate` on each, once per arm:

* plain:   the trained model on the resampled image;
* fov:     `task.fov_scale.enabled` (resample to the training FOV diameter and back);
* fov_tta: fov plus `task.tta_flips` (mean of four flips);
* tta:     flips only.

  python -m experiments.bench.fundus_transfer --workdir=workdirs/drive \
      --raw_dir=../shared/data/drive --scales=0.6,1,1.5,1.85 --out_dir=/tmp/fundus_transfer

The workdir is any trained 2D DRIVE run (its saved config and preprocessing.json
are read back). Every evaluation's metrics.json stays in
<out_dir>/scale_<s>/eval_<arm>/; the table is printed and written to
<out_dir>/transfer.md and transfer.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from absl import app
from absl import flags
import numpy as np
from PIL import Image

from medjax.engine.errors import InputError

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained 2D DRIVE segmentation run.")
_RAW_DIR = flags.DEFINE_string("raw_dir", None, "DRIVE folder (training/images, "
                               "training/1st_manual, training/mask).")
_IDS = flags.DEFINE_list("ids", ["37", "38", "39", "40"], "DRIVE image ids to score.")
_SCALES = flags.DEFINE_list("scales", ["0.6", "1", "1.5", "1.85"], "Resampling factors "
                            "(1.85: DRIVE's 540 px FOV at a 999-px-wide camera's ~1000).")
_ARMS = flags.DEFINE_list("arms", ["plain", "fov", "fov_tta", "tta"], "Evaluation arms.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Where resampled folders and results go.")
_CONFIG = flags.DEFINE_string("config", "experiments/configs/segmentation.py:drive",
                              "--config of the evaluate commands (the workdir's saved "
                              "config.json overrides its model and preprocessing).")
_METRICS = ("pooled_f1", "pixel_auc", "pooled_sensitivity", "pooled_specificity")
flags.mark_flags_as_required(["workdir", "raw_dir", "out_dir"])

ARM_OVERRIDES = {
    "plain": (),
    "fov": ("--config.task.fov_scale.enabled=True",),
    "fov_tta": ("--config.task.fov_scale.enabled=True", "--config.task.tta_flips=True"),
    "tta": ("--config.task.tta_flips=True",),
}
_FOLDERS = (("images", "{id}_training.tif", Image.BILINEAR),
            ("1st_manual", "{id}_manual1.gif", Image.NEAREST),
            ("mask", "{id}_training_mask.gif", Image.NEAREST))


def resample_folder(raw_dir: str, ids, scale: float, out: str) -> str:
  """Writes each id's image / vessel mask / FOV mask resampled by `scale` as PNG under
  out/{images,1st_manual,mask} (DRIVE's stems, so evaluate pairs them); returns out."""
  for folder, pattern, method in _FOLDERS:
    os.makedirs(os.path.join(out, folder), exist_ok=True)
    for i in ids:
      path = os.path.join(raw_dir, "training", folder, pattern.format(id=i))
      if not os.path.exists(path):
        raise InputError(f"{path} does not exist (--raw_dir={raw_dir}, --ids)")
      with Image.open(path) as image:
        image = image.convert("RGB" if folder == "images" else "L")
        size = (round(image.width * scale), round(image.height * scale))
        resized = image if scale == 1 else image.resize(size, method)
        stem = os.path.splitext(os.path.basename(path))[0]
        resized.save(os.path.join(out, folder, stem + ".png"))
  return out


def evaluate_command(workdir: str, folder: str, arm: str, config: str) -> list[str]:
  return [sys.executable, "-m", "experiments.segmentation", f"--config={config}",
          f"--workdir={workdir}",
          "--mode=evaluate", f"--input_dir={folder}/images",
          f"--label_dir={folder}/1st_manual", f"--fov_dir={folder}/mask",
          f"--output_dir={folder}/eval_{arm}", *ARM_OVERRIDES[arm]]


def run_arm(workdir: str, folder: str, arm: str) -> dict:
  """The arm's metrics (read back when already evaluated: the study resumes)."""
  path = os.path.join(folder, f"eval_{arm}", "metrics.json")
  if not os.path.exists(path):
    subprocess.run(evaluate_command(workdir, folder, arm, _CONFIG.value), check=True)
  with open(path, encoding="utf-8") as f:
    return json.load(f)["metrics"]


def table(results: dict) -> str:
  """Markdown: one row per scale, F1 / AUC / sensitivity per arm."""
  arms = list(next(iter(results.values())))
  head = "| scale | " + " | ".join(f"{a} F1 / AUC / sens" for a in arms) + " |"
  lines = [head, "|---" * (len(arms) + 1) + "|"]
  for scale, by_arm in results.items():
    cells = [" / ".join(f"{by_arm[a][m]:.3f}" for m in _METRICS[:3]) for a in arms]
    lines.append(f"| {scale} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv):
  del argv
  unknown = set(_ARMS.value) - set(ARM_OVERRIDES)
  if unknown:
    raise InputError(f"--arms: unknown {sorted(unknown)} (known: {sorted(ARM_OVERRIDES)})")
  scales = [float(s) for s in _SCALES.value]
  if any(s <= 0 for s in scales):
    raise InputError(f"--scales={_SCALES.value}: every factor must be > 0")
  results = {}
  for scale in scales:
    folder = resample_folder(_RAW_DIR.value, _IDS.value, scale,
                             os.path.join(_OUT_DIR.value, f"scale_{scale:g}"))
    results[f"{scale:g}"] = {arm: {m: run_arm(_WORKDIR.value, folder, arm)[m]
                                   for m in _METRICS} for arm in _ARMS.value}
  text = table(results)
  with open(os.path.join(_OUT_DIR.value, "transfer.md"), "w", encoding="utf-8") as f:
    f.write(text + "\n")
  with open(os.path.join(_OUT_DIR.value, "transfer.json"), "w", encoding="utf-8") as f:
    json.dump(results, f, indent=1)
  print(text)


if __name__ == "__main__":
  app.run(main)
