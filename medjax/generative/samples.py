"""Periodic samples of a GAN run: a fixed set of validation label maps, fixed noise.

At every evaluation the EMA generator draws one image per label map; the grid goes
to `<workdir>/samples/step_<step>.png` and the metrics (L1 to the real image of
that label map, and the gap in mean intensity) to the run's metrics. The
distribution metrics (KID, FID, precision / recall) are `--mode=evaluate`'s.
"""

from __future__ import annotations

import os

import numpy as np

from medjax.engine.task import Evaluator


def fixed_noise(count: int, noise_dim: int, seed: int) -> np.ndarray:
  return np.random.default_rng(seed).standard_normal((count, noise_dim)).astype(np.float32)


def first_examples(source, preprocess, count: int) -> list[dict]:
  """The first `count` examples of `source`, preprocessed (image float, label int)."""
  examples = []
  for i in range(min(count, len(source))):
    out = preprocess(source[i])
    examples.append({"image": np.asarray(out["image"], np.float32),
                     "label": np.asarray(out["label"], np.int32)})
  return examples


class SampleEvaluator(Evaluator):
  """EMA-generator samples on `split`'s label maps: grid PNG, L1, intensity gap."""

  def __init__(self, name, source, preprocess, task_config, workdir):
    self.name, self.source, self.preprocess = name, source, preprocess
    self.config, self.workdir = task_config, workdir
    self._examples = None
    self._features = None

  @property
  def examples(self) -> list[dict]:
    if self._examples is None:
      self._examples = first_examples(self.source, self.preprocess, self.config.gan.samples)
    return self._examples

  def generate(self, predict_fn, examples, seed: int = 0) -> np.ndarray:
    """One EMA-generator image per example's label map (batches of equal shapes)."""
    noise = fixed_noise(len(examples), self.config.gan.noise_dim, seed)
    out = []
    for i, example in enumerate(examples):
      batch = {"label": example["label"][None], "noise": noise[i:i + 1],
               "image": example["image"][None], "_mask": np.ones(1, np.float32)}
      out.append(np.asarray(predict_fn(batch))[0])
    return out

  def run(self, predict_fn):
    examples = self.examples
    fakes = self.generate(predict_fn, examples)
    reals = [e["image"] for e in examples]
    yield "l1", float(np.mean([np.mean(np.abs(f - r)) for f, r in zip(fakes, reals)]))
    yield "intensity_gap", float(abs(np.mean([f.mean() for f in fakes]) -
                                     np.mean([r.mean() for r in reals])))
    if self.workdir:
      self._write_grid(examples, fakes)

  def _write_grid(self, examples, fakes):
    from medjax.generative import figures  # pylint: disable=import-outside-toplevel
    folder = os.path.join(self.workdir, "samples")
    os.makedirs(folder, exist_ok=True)
    step = "final" if self.step is None else f"{self.step:06d}"
    figures.pair_grid([e["image"] for e in examples], [e["label"] for e in examples],
                      fakes, [e["label"] for e in examples],
                      os.path.join(folder, f"step_{step}.png"),
                      title=f"{self.name}: real (top) and generated from the same mask")
