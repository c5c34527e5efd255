"""2D segmentation data: raw-folder readers, TFDS builders and grain pipelines.

`load_source(name, split, data_dir, raw_dir=None, **builder_kwargs)` prepares a
dataset once (array_record under `data_dir`) and returns a random-access source;
`train_dataset` / `eval_batches` turn a source into numpy batches.
"""

from medjax.segmentation.data.errors import DataError
from medjax.segmentation.data.imageio import read_binary, read_image, read_mask
from medjax.segmentation.data.pipeline import (ct_preprocess, eval_batches, hu_window,
                                               scale_uint8, train_dataset, uint8_preprocess)
from medjax.segmentation.data.sources import BUILDERS, load_source, make_builder

__all__ = [
    "BUILDERS", "DataError", "ct_preprocess", "eval_batches", "hu_window", "load_source",
    "make_builder", "read_binary", "read_image", "read_mask", "scale_uint8", "train_dataset",
    "uint8_preprocess",
]
