r"""Does GAN augmentation help segmentation when training images are few?

For every k in --counts (0 = the whole training split) it trains a mask-conditioned
GAN on k training images only (`task.data.train_count=k`), then the segmentation
model on the same k images (`task.train_count=k`, same subset seed), without and
with generated pairs (`task.synthetic.ratio`), for every seed; and reports the
validation metric, mean ± sd over seeds, with the paired differences. With
--evaluate each GAN's samples are also scored (KID, FID, precision / recall) in the
feature space of the segmentation U-Net trained on the largest k without GAN.

  python -m experiments.bench.gan_augmentation --data=lung_ct \
      --raw_dir=../shared/data/lung_ct_2d --counts=8,16,47,0 --seeds=0,1,2 \
      --out_dir=/tmp/gan_study_lung --evaluate
  python -m experiments.bench.gan_augmentation --data=drive \
      --raw_dir=../shared/data/drive --counts=4,8 --out_dir=/tmp/gan_study_drive

Every run is the experiment's own command in its own workdir (see
experiments/bench/compare.py): rerunning the study resumes it, and any cell can be
rerun alone. Writes <out_dir>/study.md and study.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from absl import app
from absl import flags

from experiments.bench import compare

_DATA = flags.DEFINE_enum("data", "lung_ct", ["lung_ct", "drive", "quick"],
                          "Preset of both configs (segmentation.py and generative.py).")
_RAW_DIR = flags.DEFINE_string("raw_dir", "", "The dataset's raw folder (not for quick).")
_COUNTS = flags.DEFINE_list("counts", ["8", "16", "47", "0"],
                            "Training images k (0: the whole training split).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Segmentation seeds (config.seed).")
_RATIO = flags.DEFINE_float("ratio", 0.5, "task.synthetic.ratio of the GAN runs.")
_SUBSET_SEED = flags.DEFINE_integer("subset_seed", 0, "Which k images (both models).")
_SEG = flags.DEFINE_multi_string("seg", [], "Segmentation override key=value (repeat).")
_GAN = flags.DEFINE_multi_string("gan", [], "GAN override key=value (repeat).")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Root of every run of the study.")
_ARMS = flags.DEFINE_list("arms", ["real", "gan"], "real: without GAN; gan: with it (its "
                         "GAN is trained first). One arm alone can run beside the other.")
_EVALUATE = flags.DEFINE_bool("evaluate", False, "Also score each GAN's samples.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands only.")
flags.mark_flags_as_required(["out_dir"])

METRIC = {"lung_ct": "val/dice", "drive": "val/pooled_f1", "quick": "val/dice"}


def _raw(prefix: str) -> tuple[str, ...]:
  return (f"{prefix}raw_dir={os.path.abspath(_RAW_DIR.value)}",) if _RAW_DIR.value else ()


def gan_command(k: int, workdir: str) -> list[str]:
  return [sys.executable, "-m", "experiments.generative",
          f"--config=experiments/configs/generative.py:{_DATA.value}",
          *(f"--config.{o}" for o in (*_raw("task.data."), f"task.data.train_count={k}",
                                      f"task.data.train_subset_seed={_SUBSET_SEED.value}",
                                      *_GAN.value)),
          f"--workdir={workdir}"]


def seg_variants(k: int, gan_workdir: str) -> list[compare.Variant]:
  common = (*_raw("task."), f"task.train_count={k}",
            f"task.train_subset_seed={_SUBSET_SEED.value}", *_SEG.value)
  arms = {"real": compare.Variant(f"real_k{k}", common),
          "gan": compare.Variant(f"gan_k{k}", (*common, f"task.synthetic.workdir={gan_workdir}",
                                               f"task.synthetic.ratio={_RATIO.value}"))}
  return [arms[a] for a in _ARMS.value]


def train_gan(k: int) -> str | None:
  """The GAN of k images (trained unless done); None if its training failed (e.g.
  stopped on divergence: the message is in its log), so the study goes on."""
  workdir = os.path.join(_OUT_DIR.value, f"generator_k{k}")
  command = gan_command(k, workdir)
  if _DRY_RUN.value:
    print(" ".join(command))
    return workdir
  compare._check_same_command(workdir, command)  # pylint: disable=protected-access
  if not os.path.exists(os.path.join(workdir, "metrics.json")):
    print("running:", " ".join(command), flush=True)
    if subprocess.run(command, check=False).returncode:
      print(f"the GAN of k={k} failed: no GAN arm for k={k}", flush=True)
      return None
  return workdir


def sample_metrics(gan_workdir: str, feature_workdir: str) -> dict:
  path = os.path.join(gan_workdir, "evaluation", "sample_metrics.json")
  if not os.path.exists(path):
    subprocess.run([sys.executable, "-m", "experiments.generative",
                    f"--config=experiments/configs/generative.py:{_DATA.value}",
                    f"--workdir={gan_workdir}", "--mode=evaluate",
                    f"--feature_workdir={feature_workdir}"], check=True)
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def paired(real: list[dict], gan: list[dict], metric: str) -> dict:
  """Mean ± sd of each arm and of the per-seed differences (GAN - real)."""
  a, b = [r[metric] for r in real], [r[metric] for r in gan]
  diffs = [y - x for x, y in zip(a, b)]
  return {"real": compare._mean_sd(a), "gan": compare._mean_sd(b),  # pylint: disable=protected-access
          "difference": compare._mean_sd(diffs),  # pylint: disable=protected-access
          "gan_better_seeds": sum(d > 0 for d in diffs), "seeds": len(diffs)}


def table(rows: dict, metric: str) -> str:
  lines = [f"| k | {metric} real | {metric} real + GAN | difference (paired) | seeds GAN better |",
           "|---|---|---|---|---|"]
  for k, r in rows.items():
    cell = lambda v: f"{v[0]:.4f} ± {v[1]:.4f}"  # noqa: E731
    lines.append(f"| {k or 'all'} | {cell(r['real'])} | {cell(r['gan'])} | "
                 f"{r['difference'][0]:+.4f} ± {r['difference'][1]:.4f} | "
                 f"{r['gan_better_seeds']}/{r['seeds']} |")
  return "\n".join(lines) + "\n"


def sample_table(samples: dict, features: str) -> str:
  lines = [f"Samples vs the validation images, features of {features}'s U-Net encoder:", "",
           "| k | KID | FID | precision | recall |", "|---|---|---|---|---|"]
  for k, s in samples.items():
    lines.append(f"| {k or 'all'} | {s['kid_mean']:.4f} ± {s['kid_std']:.4f} | "
                 f"{s['fid']:.2f} | {s['precision']:.3f} | {s['recall']:.3f} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  counts, seeds = [int(k) for k in _COUNTS.value], [int(s) for s in _SEEDS.value]
  metric, config = METRIC[_DATA.value], f"experiments/configs/segmentation.py:{_DATA.value}"
  rows, gans = {}, {}
  for k in counts:
    gans[k] = (train_gan(k) if "gan" in _ARMS.value else
               os.path.join(_OUT_DIR.value, f"generator_k{k}"))
    variants = seg_variants(k, gans[k])
    if gans[k] is None:
      variants = [v for v in variants if v.label.startswith("real_")]
    results = compare.run_all("segmentation", config, variants, seeds, _OUT_DIR.value,
                              dry_run=_DRY_RUN.value)
    if not _DRY_RUN.value and len(results) == 2:
      rows[k] = paired(results[f"real_k{k}"], results[f"gan_k{k}"], metric)
  if _DRY_RUN.value or not rows:
    return
  report = {"metric": metric, "ratio": _RATIO.value, "rows": rows}
  text = table(rows, metric) + (
      "\nOne GAN per k, shared by the seeds: the sd is over segmentation seeds only.\n")
  if _EVALUATE.value:
    largest = max(counts, key=lambda k: k or 10**9)
    features = os.path.join(_OUT_DIR.value, f"real_k{largest}", f"seed{seeds[0]}")
    report["samples"] = {k: sample_metrics(gans[k], features) for k in counts if gans[k]}
    report["feature_workdir"] = features
    text += "\n" + sample_table(report["samples"], features)
  with open(os.path.join(_OUT_DIR.value, "study.md"), "w", encoding="utf-8") as f:
    f.write(text)
  with open(os.path.join(_OUT_DIR.value, "study.json"), "w", encoding="utf-8") as f:
    json.dump(report, f, indent=1)
  print(text)


if __name__ == "__main__":
  app.run(main)
