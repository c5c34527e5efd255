r"""Medical image segmentation (2D and 3D): train a U-Net, plan, or predict a folder.

  python -m experiments.segmentation --config=experiments/configs/segmentation.py:quick \
      --workdir=/tmp/seg_quick
  python -m experiments.segmentation --config=experiments/configs/segmentation.py:lung_ct \
      --config.task.raw_dir=../shared/data/lung_ct_2d --workdir=/tmp/lung
  python -m experiments.segmentation --config=...:lung_ct --workdir=/tmp/lung \
      --mode=predict --input_dir=my_slices/ --output_dir=/tmp/lung_masks
  python -m experiments.segmentation --config=experiments/configs/segmentation.py:hippocampus \
      --config.task.raw_dir=../shared/data/msd_hippocampus --workdir=/tmp/hippo --mode=plan
  python -m experiments.segmentation --config=...:hippocampus --workdir=/tmp/hippo \
      --mode=predict --input_dir=volumes/ --output_dir=/tmp/hippo_labels   # NIfTI in, NIfTI out

Rerunning a training command in the same workdir resumes from its last checkpoint.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from medjax.engine import distributed
from medjax.engine import runtime
from medjax.engine import workdir as workdir_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:preset].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics).")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "predict", "plan"],
                          "train; predict a folder; plan (3D): fingerprint the data "
                          "and write <workdir>/plan.json with the config it implies.")
_MEMORY_MB = flags.DEFINE_integer("plan_memory_mb", 8000,
                                  "plan: accelerator (or host) memory budget per device.")
_INPUT_DIR = flags.DEFINE_string("input_dir", None,
                                 "predict: folder of images (2D) or NIfTI volumes (3D).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "predict: where masks are written.")
flags.mark_flags_as_required(["config", "workdir"])


def _check_dirs():
  """Refuses a bad workdir / output dir before any data is read or model built."""
  if _MODE.value == "predict":
    if not (_INPUT_DIR.value and _OUTPUT_DIR.value):
      raise app.UsageError("--mode=predict needs --input_dir and --output_dir")
    workdir_lib.require_existing(_WORKDIR.value)
    workdir_lib.require_existing(_INPUT_DIR.value, "--input_dir", "the images to segment")
    workdir_lib.require_writable(_OUTPUT_DIR.value, "--output_dir")
  else:
    workdir_lib.require_writable(_WORKDIR.value)


def main(argv):
  runtime.start(argv)
  _check_dirs()
  # Imported after runtime.start, which must run before JAX starts.
  import jax  # pylint: disable=import-outside-toplevel
  from medjax.engine import train  # pylint: disable=import-outside-toplevel
  from medjax.segmentation import task as task_lib  # pylint: disable=import-outside-toplevel

  config = _CONFIG.value
  if _MODE.value == "predict":  # the model and preprocessing the workdir was trained with
    config = task_lib.config_for_prediction(config, _WORKDIR.value)
  task = task_lib.make_task(config.task, config.compute_dtype)
  if _MODE.value == "plan":
    print(task.plan(_WORKDIR.value, _MEMORY_MB.value))
    return
  if _MODE.value == "predict":
    paths = task.predict_folder(config, _WORKDIR.value, _INPUT_DIR.value, _OUTPUT_DIR.value)
    logging.info("wrote %d masks to %s", len(paths), _OUTPUT_DIR.value)
    return
  # Bad or missing data stops here, before any training; process 0 builds it.
  distributed.process_zero_first(task.prepare)
  if jax.process_index() == 0:
    workdir_lib.save_config(_WORKDIR.value, config)
    task.write_run_files(_WORKDIR.value)
  results = train.train_and_evaluate(config, _WORKDIR.value, task)
  train.exit_if_preempted(results)
  print("final metrics:", " ".join(f"{k}={v:.4f}" for k, v in sorted(results.items())))


if __name__ == "__main__":
  runtime.run(main)
