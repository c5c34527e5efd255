r"""Medical image segmentation (2D and 3D): train a U-Net, plan, or predict a folder.

  python -m experiments.segmentation --config=experiments/configs/segmentation.py:quick \
      --workdir=/tmp/seg_quick
  python -m experiments.segmentation --config=experiments/configs/segmentation.py:lung_ct \
      --config.task.raw_dir=../shared/data/lung_ct_2d --workdir=/tmp/lung
  python -m experiments.segmentation --config=...:lung_ct --workdir=/tmp/lung \
      --mode=predict --input_dir=my_slices/ --output_dir=/tmp/lung_masks \
      --probabilities=png16   # also <stem>_prob.png: round(p * 65535), or npy
  python -m experiments.segmentation --config=...:drive --workdir=/tmp/drive \
      --mode=evaluate --input_dir=DRIVE/training/images --label_dir=DRIVE/training/1st_manual \
      --fov_dir=DRIVE/training/mask --output_dir=/tmp/drive_eval  # metrics.json, per_image.csv
  python -m experiments.segmentation --config=experiments/configs/segmentation.py:hippocampus \
      --config.task.raw_dir=../shared/data/msd_hippocampus --workdir=/tmp/hippo --mode=plan
  python -m experiments.segmentation --config=...:hippocampus --workdir=/tmp/hippo \
      --mode=predict --input_dir=volumes/ --output_dir=/tmp/hippo_labels   # NIfTI in, NIfTI out
  python -m experiments.segmentation --config=experiments/configs/segmentation.py:quick \
      --workdir=/tmp/seg_quick --mode=explain --config.explain.examples=4  # -> explain/

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
_MODE = flags.DEFINE_enum("mode", "train", ["train", "predict", "plan", "evaluate", "explain"],
                          "train; predict a folder; evaluate (2D) on a labelled folder; "
                          "explain: heat maps of a class region in chosen examples and "
                          "their checks (--config.explain.*) in <workdir>/explain/; "
                          "plan (3D): fingerprint the data "
                          "and write <workdir>/plan.json with the config it implies.")
_MEMORY_MB = flags.DEFINE_integer("plan_memory_mb", 8000,
                                  "plan: accelerator (or host) memory budget per device.")
_INPUT_DIR = flags.DEFINE_string("input_dir", None,
                                 "predict: folder of images (2D) or NIfTI volumes (3D).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "predict: where masks are written.")
_LABEL_DIR = flags.DEFINE_string("label_dir", None,
                                 "evaluate (2D): label masks, one per --input_dir image "
                                 "(same file stem).")
_FOV_DIR = flags.DEFINE_string("fov_dir", None,
                               "evaluate (2D): optional field-of-view masks; metrics count "
                               "only pixels inside them.")
_PROBABILITIES = flags.DEFINE_enum("probabilities", "none", ["none", "png16", "npy"],
                                   "predict (2D): also write foreground probability maps: "
                                   "16-bit PNG (round(p*65535)) or float32 .npy.")
flags.mark_flags_as_required(["config", "workdir"])


def _check_dirs():
  """Refuses a bad workdir / output dir before any data is read or model built."""
  if _MODE.value == "evaluate":
    if not (_INPUT_DIR.value and _LABEL_DIR.value and _OUTPUT_DIR.value):
      raise app.UsageError("--mode=evaluate needs --input_dir, --label_dir and --output_dir")
    workdir_lib.require_existing(_WORKDIR.value)
    workdir_lib.require_existing(_INPUT_DIR.value, "--input_dir", "the images to evaluate on")
    workdir_lib.require_existing(_LABEL_DIR.value, "--label_dir", "the label masks")
    if _FOV_DIR.value:
      workdir_lib.require_existing(_FOV_DIR.value, "--fov_dir", "the field-of-view masks")
    workdir_lib.require_writable(_OUTPUT_DIR.value, "--output_dir")
  elif _MODE.value == "predict":
    if not (_INPUT_DIR.value and _OUTPUT_DIR.value):
      raise app.UsageError("--mode=predict needs --input_dir and --output_dir")
    workdir_lib.require_existing(_WORKDIR.value)
    workdir_lib.require_existing(_INPUT_DIR.value, "--input_dir", "the images to segment")
    workdir_lib.require_writable(_OUTPUT_DIR.value, "--output_dir")
  elif _MODE.value == "explain":
    workdir_lib.require_existing(_WORKDIR.value)
  else:
    workdir_lib.require_writable(_WORKDIR.value)


def _evaluate(task, config):
  """--mode=evaluate: prints and writes the metrics of a labelled folder."""
  if not hasattr(task, "evaluate_folder"):
    raise app.UsageError("--mode=evaluate scores 2D models on image / mask folders")
  metrics = task.evaluate_folder(config, _WORKDIR.value, _INPUT_DIR.value, _LABEL_DIR.value,
                                 _OUTPUT_DIR.value, fov_dir=_FOV_DIR.value)
  print("evaluate metrics:", " ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
  logging.info("wrote metrics.json and per_image.csv to %s", _OUTPUT_DIR.value)


def _explain(flag_config, task_lib):
  """The run's saved config with this command's --config.explain.* and mesh; writes
  explain/."""
  from medjax.explain import mode  # pylint: disable=import-outside-toplevel
  from medjax.segmentation import explanation  # pylint: disable=import-outside-toplevel
  mode.run_from_flags(flags.FLAGS, flag_config, _WORKDIR.value,
                      lambda c: task_lib.make_task(c.task, c.compute_dtype), explanation.explain_run)


def main(argv):
  runtime.start(argv)
  _check_dirs()
  # Imported after runtime.start, which must run before JAX starts.
  import jax  # pylint: disable=import-outside-toplevel
  from medjax.engine import train  # pylint: disable=import-outside-toplevel
  from medjax.segmentation import task as task_lib  # pylint: disable=import-outside-toplevel

  config = _CONFIG.value
  if _MODE.value == "explain":  # the trained config, with the explain flags
    _explain(config, task_lib)
    return
  if _MODE.value in ("predict", "evaluate"):  # the model and preprocessing trained with
    config = task_lib.config_for_prediction(config, _WORKDIR.value)
  task = task_lib.make_task(config.task, config.compute_dtype)
  if _MODE.value == "plan":
    print(task.plan(_WORKDIR.value, _MEMORY_MB.value))
    return
  if _MODE.value == "evaluate":
    _evaluate(task, config)
    return
  if _MODE.value == "predict":
    extra = {"probabilities": _PROBABILITIES.value} if _PROBABILITIES.value != "none" else {}
    if extra and config.task.spatial_dims != 2:
      raise app.UsageError("--probabilities is for 2D models (3D writes NIfTI labels)")
    paths = task.predict_folder(config, _WORKDIR.value, _INPUT_DIR.value, _OUTPUT_DIR.value,
                                **extra)
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
