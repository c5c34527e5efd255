r"""Medical image classification (2D and 3D): train a CNN, or predict a folder of images.

  python -m experiments.classification --config=experiments/configs/classification.py:quick \
      --workdir=/tmp/cls_quick
  python -m experiments.classification \
      --config=experiments/configs/classification.py:pneumonia_resnet18 \
      --config.task.raw_dir=../shared/data/chest_xray_pneumonia_224 --workdir=/tmp/pneumonia
  python -m experiments.classification --config=...:pneumonia_resnet18 --workdir=/tmp/pneumonia \
      --mode=predict --input_dir=xrays/ --output_csv=/tmp/probabilities.csv
  python -m experiments.classification --config=experiments/configs/classification.py:quick \
      --workdir=/tmp/cls_quick --mode=explain --config.explain.examples=4  # -> explain/

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
_MODE = flags.DEFINE_enum("mode", "train", ["train", "predict", "explain"],
                          "train; predict: a CSV of class probabilities for a folder; "
                          "explain: heat maps of chosen examples and their checks "
                          "(--config.explain.*) in <workdir>/explain/.")
_INPUT_DIR = flags.DEFINE_string("input_dir", None, "predict: folder of images (2D).")
_OUTPUT_CSV = flags.DEFINE_string("output_csv", None, "predict: the CSV written.")
flags.mark_flags_as_required(["config", "workdir"])


def _check_paths():
  """Refuses a bad workdir / input / output before any data is read or model built."""
  if _MODE.value == "predict":
    if not (_INPUT_DIR.value and _OUTPUT_CSV.value):
      raise app.UsageError("--mode=predict needs --input_dir and --output_csv")
    workdir_lib.require_existing(_WORKDIR.value)
    workdir_lib.require_existing(_INPUT_DIR.value, "--input_dir", "the images to classify")
    workdir_lib.require_output_file(_OUTPUT_CSV.value, "--output_csv")
  elif _MODE.value == "explain":
    workdir_lib.require_existing(_WORKDIR.value)
  else:
    workdir_lib.require_writable(_WORKDIR.value)


def _explain(flag_config, task_lib):
  """The run's saved config with this command's --config.explain.* and mesh; writes
  explain/."""
  from medjax.classification import explanation  # pylint: disable=import-outside-toplevel
  from medjax.explain import mode  # pylint: disable=import-outside-toplevel
  mode.run_from_flags(flags.FLAGS, flag_config, _WORKDIR.value,
                      lambda c: task_lib.ClassificationTask(c.task, c.compute_dtype),
                      explanation.explain_run)


def main(argv):
  runtime.start(argv)
  _check_paths()
  # Imported after runtime.start, which must run before JAX starts.
  import jax  # pylint: disable=import-outside-toplevel
  from medjax.classification import predict  # pylint: disable=import-outside-toplevel
  from medjax.classification import task as task_lib  # pylint: disable=import-outside-toplevel
  from medjax.engine import train  # pylint: disable=import-outside-toplevel

  config = _CONFIG.value
  if _MODE.value == "predict":
    task = task_lib.ClassificationTask.from_workdir(config.task, _WORKDIR.value,
                                                    config.compute_dtype)
    rows = predict.predict_folder(config, _WORKDIR.value, task, _INPUT_DIR.value,
                                  _OUTPUT_CSV.value)
    logging.info("wrote probabilities of %d images to %s", rows, _OUTPUT_CSV.value)
    return
  if _MODE.value == "explain":
    _explain(config, task_lib)
    return
  task = task_lib.ClassificationTask(config.task, config.compute_dtype)
  # Bad or missing data stops here, before any training; process 0 builds it.
  distributed.process_zero_first(task.prepare)
  if jax.process_index() == 0:
    task.save_info(_WORKDIR.value)
    workdir_lib.save_config(_WORKDIR.value, config)  # read back by --mode=explain
  results = train.train_and_evaluate(config, _WORKDIR.value, task)
  train.exit_if_preempted(results)
  print("final metrics:", " ".join(f"{k}={v:.4f}" for k, v in sorted(results.items())))


if __name__ == "__main__":
  runtime.run(main)
