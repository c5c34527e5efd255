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

from absl import flags
from PIL import Image

from medjax.engine import runtime
from medjax.engine.errors import InputError

_METRICS = ("pooled_f1", "pixel_auc", "pooled_sensitivity", "pooled_specificity")


def define_flags():
  """This command's flags (defined only when run, so tests can import the module beside
  the experiment mains, whose --workdir / --config would collide)."""
  flags.DEFINE_string("workdir", None, "A trained 2D DRIVE segmentation run.")
  flags.DEFINE_string("raw_dir", None, "DRIVE folder (training/images, training/1st_manual, "
                      "training/mask).")
  flags.DEFINE_list("ids", ["37", "38", "39", "40"], "DRIVE image ids to score.")
  flags.DEFINE_list("scales", ["0.6", "1", "1.5", "1.85"], "Resampling factors (1.85: "
                    "DRIVE's 540 px FOV at a 999-px-wide camera's ~1000).")
  flags.DEFINE_list("arms", ["plain", "fov", "fov_tta", "tta"], "Evaluation arms.")
  flags.DEFINE_string("out_dir", None, "Where resampled folders and results go.")
  flags.DEFINE_string("config", "experiments/configs/segmentation.py:drive", "--config of the "
                      "evaluate commands (the workdir's saved config.json overrides its model "
                      "and preprocessing).")
  flags.mark_flags_as_required(["workdir", "raw_dir", "out_dir"])


# Every arm sets both options: a preset's default (the drive preset flips) does not leak in.
ARM_OVERRIDES = {
    arm: (f"--config.task.fov_scale.enabled={fov}", f"--config.task.tta_flips={tta}")
    for arm, fov, tta in (("plain", False, False), ("fov", True, False),
                          ("fov_tta", True, True), ("tta", False, True))
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


def _finished(path: str, workdir: str) -> dict | None:
  """metrics.json's metrics if it exists and scored `workdir` (else None: rerun)."""
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    record = json.load(f)
  return record["metrics"] if record.get("workdir") == workdir else None


def run_arm(workdir: str, folder: str, arm: str, config: str) -> dict:
  """The arm's metrics; read back when this workdir was already evaluated (the study
  resumes), evaluated again when another model wrote them."""
  path = os.path.join(folder, f"eval_{arm}", "metrics.json")
  metrics = _finished(path, workdir)
  if metrics is None:
    subprocess.run(evaluate_command(workdir, folder, arm, config), check=True)
    metrics = _finished(path, workdir)
  return metrics


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
  f = flags.FLAGS
  unknown = set(f.arms) - set(ARM_OVERRIDES)
  if unknown:
    raise InputError(f"--arms: unknown {sorted(unknown)} (known: {sorted(ARM_OVERRIDES)})")
  scales = [float(s) for s in f.scales]
  if any(s <= 0 for s in scales):
    raise InputError(f"--scales={f.scales}: every factor must be > 0")
  results = {}
  for scale in scales:
    folder = resample_folder(f.raw_dir, f.ids, scale, os.path.join(f.out_dir, f"scale_{scale:g}"))
    results[f"{scale:g}"] = {arm: {m: run_arm(f.workdir, folder, arm, f.config)[m]
                                   for m in _METRICS} for arm in f.arms}
  text = table(results)
  with open(os.path.join(f.out_dir, "transfer.md"), "w", encoding="utf-8") as out:
    out.write(text + "\n")
  with open(os.path.join(f.out_dir, "transfer.json"), "w", encoding="utf-8") as out:
    json.dump(results, out, indent=1)
  print(text)


if __name__ == "__main__":
  define_flags()
  runtime.run(main)
