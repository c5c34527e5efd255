"""A medical volume on its grid: voxels plus the affine that places them in the world."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass
class Volume:
  """Voxels in file index order with their voxel -> world (RAS+, mm) affine.

  `array` is (X, Y, Z) for labels and (X, Y, Z, C) for images (C = channels or
  modalities, 1 for a plain scan). `header` is the source's header (a nibabel
  header for NIfTI, None otherwise), kept so that outputs can be written back
  with the input's header. `path` names the file or folder it came from.
  """

  array: np.ndarray
  affine: np.ndarray
  header: Any = None
  path: str = ""

  @property
  def spacing(self) -> tuple[float, float, float]:
    """Voxel size in mm along each array axis (the affine's column norms)."""
    return tuple(float(s) for s in np.linalg.norm(np.asarray(self.affine)[:3, :3], axis=0))

  @property
  def shape(self) -> tuple[int, int, int]:
    return tuple(self.array.shape[:3])
