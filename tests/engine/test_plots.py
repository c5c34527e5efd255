import json

import matplotlib.colors
import numpy as np

from medjax.engine import plots

SCORES = ["dice", "pooled_dice", "pixel_auc", "accuracy", "precision", "recall",
          "specificity", "pooled_f1", "iou", "pooled_iou", "dice_class1", "sensitivity"]


def _synthetic_jsonl(path):
  """A segmentation-like run to step 30, resumed at 20: steps 20-30 appear twice."""
  rows = []
  for step in range(5, 31, 5):
    rows.append({"step": step, "train/loss": 1.0 / step, "train/ce": 0.5 / step,
                 "train/learning_rate": 1e-3, "train/steps_per_sec": 3.0})
    if step % 10 == 0:
      rows.append({"step": step, "val/loss": 2.0 / step, "val/hd95": 10.0 + step,
                   "val/hd95_mm": 1.0 + step, "val/num_images": 4.0, "val/rmse": 3.0 * step,
                   "val/roc_auc/task_a": 0.5, "val/count": 12.0,
                   **{f"val/{m}": step / 40 for m in SCORES}})
  rows.append({"step": 30, "val/hd95": "inf"})  # non-finite: in the file, not plotted
  replay = [dict(r, **{"train/loss": 7.0}) if "train/loss" in r else r
            for r in rows if r["step"] >= 20]  # the resumed run's rows win
  path.write_text("".join(json.dumps(r) + "\n" for r in rows + replay))


def test_panels_by_scale_with_distinct_colours_and_units(tmp_path):
  _synthetic_jsonl(tmp_path / "metrics.jsonl")
  fig = plots.learning_curves(str(tmp_path / "metrics.jsonl"), str(tmp_path / "lc.png"))
  assert (tmp_path / "lc.png").stat().st_size > 1000
  axes = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
  assert set(axes) == {"loss", "scores in [0, 1]", "distance (px)", "distance (mm)", "rmse"}
  labels = {t: ax.get_legend_handles_labels()[1] for t, ax in axes.items()}
  assert labels["loss"] == ["train/ce", "train/loss", "val/loss"]  # train and val together
  assert sorted(labels["scores in [0, 1]"]) == sorted(f"val/{m}" for m in SCORES)
  assert labels["distance (px)"] == ["val/hd95 (px)"]
  assert labels["distance (mm)"] == ["val/hd95_mm (mm)"]
  assert axes["distance (px)"].get_ylabel() == "hd95 (px)"
  assert axes["distance (mm)"].get_ylabel() == "hd95_mm (mm)"
  # Twelve score lines, twelve different colours.
  colours = {matplotlib.colors.to_hex(line.get_color()) for line in axes["scores in [0, 1]"].lines}
  assert len(colours) == len(SCORES)
  # Each step once; for a step logged twice (the resumed run), the later row.
  (train_loss,) = [l for l in axes["loss"].lines if l.get_label() == "train/loss"]
  steps, values = train_loss.get_xydata().T
  np.testing.assert_array_equal(steps, [5, 10, 15, 20, 25, 30])
  np.testing.assert_allclose(values, [1 / 5, 1 / 10, 1 / 15, 7.0, 7.0, 7.0])
  (hd95,) = axes["distance (px)"].lines
  np.testing.assert_array_equal(hd95.get_xydata(), [[10, 20], [20, 30], [30, 40]])


def test_nothing_to_plot_writes_nothing(tmp_path):
  (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/learning_rate": 0.1}\n')
  assert plots.learning_curves(str(tmp_path / "metrics.jsonl"), str(tmp_path / "x.png")) is None
  assert not (tmp_path / "x.png").exists()
