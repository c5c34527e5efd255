r"""Mask-conditioned GAN for segmentation augmentation: train, evaluate the samples.

  python -m experiments.generative --config=experiments/configs/generative.py:quick \
      --workdir=/tmp/gan_quick
  python -m experiments.generative --config=experiments/configs/generative.py:lung_ct \
      --config.task.data.raw_dir=../shared/data/lung_ct_2d \
      --config.task.data.train_count=16 --workdir=/tmp/gan_lung16
  # KID / FID / precision-recall of the samples in the feature space of a trained
  # segmentation U-Net, and a figure of real vs generated pairs -> <workdir>/evaluation/
  python -m experiments.generative --config=experiments/configs/generative.py:lung_ct \
      --workdir=/tmp/gan_lung16 --mode=evaluate --feature_workdir=/tmp/seg_lung

Then mix generated pairs into segmentation training:
  python -m experiments.segmentation --config=experiments/configs/segmentation.py:lung_ct \
      --config.task.train_count=16 --config.task.synthetic.workdir=/tmp/gan_lung16 \
      --config.task.synthetic.ratio=0.5 --workdir=/tmp/seg_lung16_gan

Rerunning a training command in the same workdir resumes from its last checkpoint.
"""

import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from medjax.engine import distributed
from medjax.engine import runtime
from medjax.engine import workdir as workdir_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:preset].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, samples/).")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "evaluate"],
                          "train; evaluate: distribution metrics of the samples on the "
                          "validation masks and a figure, in <workdir>/evaluation/.")
_FEATURE_WORKDIR = flags.DEFINE_string(
    "feature_workdir", None, "evaluate: a trained segmentation run whose U-Net encoder "
    "gives the feature space of KID / FID / precision-recall.")
_SEED = flags.DEFINE_integer("sample_seed", 0, "evaluate: the noise of the samples.")
flags.mark_flags_as_required(["config", "workdir"])


def _check_paths():
  if _MODE.value == "evaluate":
    workdir_lib.require_existing(_WORKDIR.value, holds="a trained GAN run")
    if not _FEATURE_WORKDIR.value:
      raise app.UsageError("--mode=evaluate needs --feature_workdir (a trained "
                           "segmentation run: its U-Net gives the feature space)")
    workdir_lib.require_existing(_FEATURE_WORKDIR.value, "--feature_workdir",
                                 "a trained segmentation run")
  else:
    workdir_lib.require_writable(_WORKDIR.value)


def _evaluate():
  """Samples for every validation mask, their metrics against the real images."""
  import jax  # pylint: disable=import-outside-toplevel
  from medjax.generative import evaluate  # pylint: disable=import-outside-toplevel
  from medjax.generative import features  # pylint: disable=import-outside-toplevel
  from medjax.generative import sampling  # pylint: disable=import-outside-toplevel
  from medjax.generative import samples  # pylint: disable=import-outside-toplevel
  from medjax.segmentation import task as seg_task  # pylint: disable=import-outside-toplevel
  generator = sampling.load_generator(_WORKDIR.value, "--workdir")
  data = seg_task.SegmentationTask(generator.config.task.data)
  split = generator.config.task.data.eval_splits[0]
  source = data.eval_sources[split]
  real = samples.first_examples(source, data.preprocess, len(source))
  real = [{"image": e["image"], "mask": e["label"]} for e in real]
  seg_config = workdir_lib.load_config(_FEATURE_WORKDIR.value)
  if seg_config is None:
    raise app.UsageError(f"--feature_workdir={_FEATURE_WORKDIR.value} has no config.json")
  feature_fn = features.unet_features(seg_config, _FEATURE_WORKDIR.value)
  fake = evaluate.generate_like(generator, real, jax.random.key(_SEED.value))
  results = evaluate.score(real, fake, feature_fn)
  results.update(split=split, feature_workdir=os.path.abspath(_FEATURE_WORKDIR.value))
  paths = evaluate.write_report(results, real, fake, os.path.join(_WORKDIR.value,
                                                                  "evaluation"))
  logging.info("wrote %s", ", ".join(paths))
  return results


def main(argv):
  runtime.start(argv)
  _check_paths()
  # Imported after runtime.start, which must run before JAX starts.
  import jax  # pylint: disable=import-outside-toplevel
  from medjax.engine import train  # pylint: disable=import-outside-toplevel
  from medjax.generative import task as task_lib  # pylint: disable=import-outside-toplevel

  if _MODE.value == "evaluate":
    results = _evaluate()
    print("sample metrics:", " ".join(f"{k}={v}" for k, v in sorted(results.items())))
    return
  config = _CONFIG.value
  task = task_lib.GanTask(config.task, _WORKDIR.value)
  # Bad or missing data stops here, before any training; process 0 builds it.
  distributed.process_zero_first(task.data.prepare)
  if jax.process_index() == 0:
    workdir_lib.save_config(_WORKDIR.value, config)  # read back by the sampler
  results = train.train_and_evaluate(config, _WORKDIR.value, task)
  train.exit_if_preempted(results)
  logging.info("samples: %s", os.path.join(_WORKDIR.value, "samples"))
  print("final metrics:", " ".join(f"{k}={v:.4f}" for k, v in sorted(results.items())))


if __name__ == "__main__":
  runtime.run(main)
