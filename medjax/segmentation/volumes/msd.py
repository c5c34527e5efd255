"""Medical Segmentation Decathlon-style folders, for any task.

A folder holds imagesTr/ and labelsTr/ (and optionally imagesTs/) of NIfTI files.
With a dataset.json (MSD: "labels" {"0": "background", ...}, "modality",
"training" [{"image", "label"}], "test" [...]; or nnU-Net v2: "labels"
{"background": 0, ...}, "channel_names", "file_ending") the cases and classes
come from it. Without one, images are paired with labels by file name, nnU-Net
channel files `case_0000.nii.gz, case_0001.nii.gz, ...` forming one case, and
the classes are found by scanning the label files.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
import dataclasses
import functools
import json
import os
import re

import numpy as np

from medjax.segmentation.data.errors import DataError, raise_all
from medjax.segmentation.volumes import io as nifti
from medjax.segmentation.volumes.volume import Volume

DEFAULT_ENDING = ".nii.gz"
AFFINE_TOL_MM = 1e-3
_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclasses.dataclass(frozen=True)
class Case:
  """One case: its id, its image files (one per channel, or one 4D file) and its label."""
  id: str
  images: tuple[str, ...]
  label: str | None


def _read_json(path: str) -> dict:
  try:
    with open(path) as f:
      meta = json.load(f)
  except (OSError, ValueError) as e:
    raise DataError(f"cannot read {path}: {e}") from e
  if not isinstance(meta, dict):
    raise DataError(f"{path} must hold a JSON object, not {type(meta).__name__}")
  return meta


def parse_labels(labels, where: str) -> dict[int, str]:
  """{index: name} from MSD {"0": "background"}, nnU-Net {"background": 0} or a list."""
  if isinstance(labels, (list, tuple)):
    labels = dict(enumerate(labels)) if labels and isinstance(labels[0], str) else {
        int(v): f"class_{int(v)}" for v in labels}
  if not isinstance(labels, Mapping) or not labels:
    raise DataError(f"labels in {where} must be a non-empty mapping, not {labels!r}")
  try:
    if all(re.fullmatch(r"-?\d+", str(k)) for k in labels):
      parsed = {int(k): str(v) for k, v in labels.items()}
    else:  # nnU-Net v2: name -> index
      parsed = {_index(v, k): str(k) for k, v in labels.items()}
  except (TypeError, ValueError) as e:
    raise DataError(f"labels in {where} must map class indices to names (MSD) or names to "
                    f"indices (nnU-Net); {e}") from e
  if min(parsed) < 0:
    raise DataError(f"labels in {where} have a negative class index: {labels!r}")
  return dict(sorted(parsed.items()))


def _index(value, name) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, str)) or not re.fullmatch(
      r"\d+", str(value)):
    raise ValueError(f"class {name!r} has index {value!r} (region-based labels, lists of "
                     f"indices, are not supported)")
  return int(value)


class MsdFolder:
  """The cases, classes and channels of one MSD/nnU-Net-style folder."""

  def __init__(self, root, labels=None):
    self.root = os.fspath(root)
    if not os.path.isdir(self.root):
      raise DataError(f"dataset folder not found: {self.root}")
    json_path = os.path.join(self.root, "dataset.json")
    self.meta = _read_json(json_path) if os.path.isfile(json_path) else {}
    self.ending = str(self.meta.get("file_ending", DEFAULT_ENDING))
    self._given_labels = labels
    self._channel_files = False  # nnU-Net `case_0000` channel files in imagesTr
    self._splits = {"train": self._train_cases(), "test": self._test_cases()}

  # ------------------------------------------------------------------ classes, channels
  @functools.cached_property
  def labels(self) -> dict[int, str]:
    """{class index: name}, from `labels=`, dataset.json or a scan of the label files."""
    if self._given_labels is not None:
      return parse_labels(self._given_labels, "the labels argument")
    if "labels" in self.meta:
      return parse_labels(self.meta["labels"], os.path.join(self.root, "dataset.json"))
    return scan_labels(c.label for c in self._splits["train"])

  @property
  def channels(self) -> list[str]:
    """Channel (modality) names in channel order."""
    names = self.meta.get("channel_names", self.meta.get("modality"))
    if isinstance(names, Mapping) and names:
      return [str(names[k]) for k in sorted(names, key=int)]
    cases = self._splits["train"] or self._splits["test"]
    count = len(cases[0].images) if cases else 1
    return ["image"] if count == 1 else [f"channel_{c:04d}" for c in range(count)]

  def cases(self, split: str = "train") -> list[Case]:
    """Labelled training cases ("train") or unlabelled imagesTs cases ("test"), by id."""
    if split not in self._splits:
      raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    return list(self._splits[split])

  # ------------------------------------------------------------------ listing
  def _path(self, entry: str) -> str:
    return os.path.normpath(os.path.join(self.root, entry))

  def _case_id(self, path: str) -> str:
    name = os.path.basename(path)
    return name[:-len(self.ending)] if name.endswith(self.ending) else name.split(".")[0]

  def _train_cases(self) -> list[Case]:
    if "training" in self.meta:
      return self._listed(self.meta["training"], "training")
    if "dataset" in self.meta:  # nnU-Net v2: {case: {"images": [...], "label": ...}}
      return self._nnunet_listed(self.meta["dataset"])
    images_dir = os.path.join(self.root, "imagesTr")
    labels_dir = os.path.join(self.root, "labelsTr")
    for d in (images_dir, labels_dir):
      if not os.path.isdir(d):
        raise DataError(f"{self.root} has no {os.path.basename(d)}/ folder (an MSD-style "
                        f"folder holds imagesTr/ and labelsTr/ of {self.ending} files)")
    images = self._group(images_dir, self._names(labels_dir))
    labels = {self._case_id(n): os.path.join(labels_dir, n) for n in self._names(labels_dir)}
    problems = [f"image {images[c][0]} has no label {os.path.join(labels_dir, c + self.ending)}"
                for c in sorted(set(images) - set(labels))]
    problems += [f"label {labels[c]} has no image in {images_dir}"
                 for c in sorted(set(labels) - set(images))]
    raise_all(problems, self.root)
    if not images:
      raise DataError(f"no {self.ending} files in {images_dir}")
    return [Case(c, images[c], labels[c]) for c in sorted(images)]

  def _test_cases(self) -> list[Case]:
    if "test" in self.meta:
      return self._listed(self.meta["test"], "test")
    images_dir = os.path.join(self.root, "imagesTs")
    if not os.path.isdir(images_dir):
      return []
    images = self._group(images_dir, None)
    return [Case(c, images[c], None) for c in sorted(images)]

  def _names(self, directory: str) -> list[str]:
    """Visible `ending` files in `directory` (macOS `._x` resource forks are hidden)."""
    return sorted(n for n in os.listdir(directory)
                  if n.endswith(self.ending) and not n.startswith("."))

  def _group(self, directory: str,
             label_names: Iterable[str] | None) -> dict[str, tuple[str, ...]]:
    """{case id: image files}. Files `case_0000`, `case_0001`, ... are one case's channels
    when every file is so named and no label file keeps the suffix (`label_names`; None:
    as decided for imagesTr)."""
    names = self._names(directory)
    stems = [n[:-len(self.ending)] for n in names]
    matches = [_CHANNEL_FILE.match(s) for s in stems]
    if label_names is not None:
      label_stems = {n[:-len(self.ending)] for n in label_names}
      self._channel_files = bool(names) and all(matches) and not label_stems & set(stems)
    if not self._channel_files or not all(matches):
      return {s: (os.path.join(directory, n),) for s, n in zip(stems, names)}
    channels = collections.defaultdict(dict)
    for m, n in zip(matches, names):
      channels[m["case"]][int(m["channel"])] = os.path.join(directory, n)
    count = max(len(v) for v in channels.values())
    problems = [f"case {c} in {directory} has channel files {sorted(v)}, expected "
                f"0..{count - 1} as the other cases"
                for c, v in sorted(channels.items()) if sorted(v) != list(range(count))]
    raise_all(problems, directory)
    return {c: tuple(v[k] for k in sorted(v)) for c, v in channels.items()}

  def _listed(self, entries, key: str) -> list[Case]:
    """Cases from dataset.json's "training" or "test" list, checked to exist."""
    where = os.path.join(self.root, "dataset.json")
    if not isinstance(entries, list):
      raise DataError(f'"{key}" in {where} must be a list')
    cases, problems = [], []
    for entry in entries:
      image = entry.get("image") if isinstance(entry, dict) else entry
      label = entry.get("label") if isinstance(entry, dict) else None
      if not isinstance(image, str) or (key == "training" and not isinstance(label, str)):
        problems.append(f'entry {entry!r} of "{key}" needs "image" and "label" paths')
        continue
      paths = [self._path(image)] + ([self._path(label)] if label else [])
      problems += [f'{p} (listed in "{key}") does not exist' for p in paths
                   if not os.path.isfile(p)]
      cases.append(Case(self._case_id(image), (paths[0],), paths[1] if label else None))
    raise_all(problems, where)
    return sorted(cases, key=lambda c: c.id)


  def _nnunet_listed(self, entries) -> list[Case]:
    where = os.path.join(self.root, "dataset.json")
    if not isinstance(entries, Mapping):
      raise DataError(f'"dataset" in {where} must map case ids to {{"images", "label"}}')
    cases, problems = [], []
    for case_id, entry in sorted(entries.items()):
      images = entry.get("images") if isinstance(entry, Mapping) else None
      label = entry.get("label") if isinstance(entry, Mapping) else None
      if not isinstance(images, list) or not images or not isinstance(label, str):
        problems.append(f'case {case_id!r} of "dataset" needs "images" (a list) and "label"')
        continue
      paths = [self._path(p) for p in images] + [self._path(label)]
      problems += [f'{p} (listed in "dataset") does not exist' for p in paths
                   if not os.path.isfile(p)]
      cases.append(Case(str(case_id), tuple(paths[:-1]), paths[-1]))
    raise_all(problems, where)
    return cases


def scan_labels(label_paths: Iterable[str | None]) -> dict[int, str]:
  """{0: "background", 1: "class_1", ...} over the values found in the label files."""
  values = {0}
  for path in label_paths:
    if path is not None:
      values.update(np.unique(nifti.read_nifti_label(path).array).tolist())
  if min(values) < 0:
    raise DataError(f"label files hold negative values {sorted(v for v in values if v < 0)}")
  return {v: "background" if v == 0 else f"class_{v}" for v in sorted(values)}


def _corners_mm(affine: np.ndarray, shape) -> np.ndarray:
  corners = np.array(np.meshgrid(*[[0, s - 1] for s in shape[:3]], indexing="ij")).reshape(3, -1)
  return affine[:3, :3] @ corners + affine[:3, 3:]


def check_same_grid(volume: Volume, reference: Volume, what: str) -> None:
  """DataError naming both files unless shapes match and corners agree within 1e-3 mm."""
  if volume.shape != reference.shape:
    raise DataError(f"{what} {volume.path} has shape {volume.shape} but image "
                    f"{reference.path} has shape {reference.shape}")
  gap = np.abs(_corners_mm(volume.affine, volume.shape) -
               _corners_mm(reference.affine, reference.shape)).max()
  if gap > AFFINE_TOL_MM:
    raise DataError(f"{what} {volume.path} is not on the grid of image {reference.path} "
                    f"(corners up to {gap:.4g} mm apart); affines:\n"
                    f"{np.round(volume.affine, 4)}\nvs\n{np.round(reference.affine, 4)}")


def load_case(case: Case, labels, channels: int | None = None
              ) -> tuple[Volume, Volume | None]:
  """Reads a case's image (channels stacked) and label, checking grids and label values.

  `channels`, if given, is the channel count every image must have (the folder's).
  """
  volumes = [nifti.read_nifti(p) for p in case.images]
  for other in volumes[1:]:
    check_same_grid(other, volumes[0], "channel file")
  image = volumes[0]
  if len(volumes) > 1:
    image = Volume(np.concatenate([v.array for v in volumes], axis=-1), image.affine,
                   image.header, image.path)
  if channels is not None and image.array.shape[-1] != channels:
    raise DataError(f"image {', '.join(case.images)} has {image.array.shape[-1]} channels; "
                    f"the dataset has {channels}")
  if case.label is None:
    return image, None
  label = nifti.read_nifti_label(case.label)
  check_same_grid(label, image, "label")
  allowed = set(int(k) for k in (labels.keys() if isinstance(labels, Mapping) else labels))
  bad = sorted(set(np.unique(label.array).tolist()) - allowed)
  if bad:
    raise DataError(f"label {case.label} holds values {bad} that are not classes "
                    f"{sorted(allowed)} of the dataset")
  return image, label
