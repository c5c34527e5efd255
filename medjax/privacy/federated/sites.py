"""Hospital sites of an EHR data set and each site's own stratified train / val / test split.

`config.federated.site_split` names the rule that assigns stays to sites:

* `physionet_icu_type`: the ICUType descriptor of PhysioNet 2012 stays (also drawn by
  the synthetic generator): 4 sites, Coronary Care, Cardiac Surgery Recovery, Medical
  ICU, Surgical ICU. Stays without an ICU type are left out (and counted).
* `eicu_hospital`: the `hospitalid` of eICU unit stays; hospitals with fewer than
  `federated.min_site_stays` stays are left out.

Every site gets its own stratified random split (`federated.test_fraction`, then
`federated.val_fraction` of the rest, seed `federated.split_seed`), so local,
centralised and federated models are compared on the same per-site test stays.
Indices are into the whole data set.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from medjax.engine.errors import InputError
from medjax.ehr import splits as splits_lib

ICU_TYPES = {1: "Coronary Care", 2: "Cardiac Surgery Recovery", 3: "Medical ICU",
             4: "Surgical ICU"}
SITE_SPLITS = ("physionet_icu_type", "eicu_hospital")


@dataclasses.dataclass
class Site:
  name: str
  splits: dict[str, np.ndarray]  # train / val / test indices into the data set

  @property
  def num_train(self) -> int:
    return int(len(self.splits["train"]))


def site_labels(data, site_split: str, min_site_stays: int = 0):
  """(site names, (N,) site index per stay, -1 = in no site)."""
  if site_split == "physionet_icu_type":
    names = getattr(data, "static_names", ())
    if "ICUType" not in names:
      raise InputError("config.federated.site_split='physionet_icu_type' needs ICU stays "
                       "with an ICUType descriptor (config.task.dataset physionet or "
                       f"synthetic), not {type(data).__name__}")
    icu = data.static[:, list(names).index("ICUType")]
    index = np.full(len(data), -1, np.int64)
    for k, code in enumerate(ICU_TYPES):
      index[icu == code] = k
    return list(ICU_TYPES.values()), index
  if site_split == "eicu_hospital":
    hospitals = getattr(data, "sites", None)
    if hospitals is None:
      raise InputError("config.federated.site_split='eicu_hospital' needs the eICU data "
                       "set (config.task.dataset='eicu')")
    ids, inverse, counts = np.unique(np.asarray(hospitals), return_inverse=True,
                                     return_counts=True)
    kept = [k for k in range(len(ids)) if counts[k] >= min_site_stays]
    if not kept:
      raise InputError(f"no eICU hospital has config.federated.min_site_stays="
                       f"{min_site_stays} stays (largest: {counts.max()})")
    remap = np.full(len(ids), -1, np.int64)
    remap[kept] = np.arange(len(kept))
    return [f"hospital {ids[k]}" for k in kept], remap[inverse]
  raise InputError(f"config.federated.site_split={site_split!r}: unknown; use one of "
                   f"{' | '.join(SITE_SPLITS)}")


def make_sites(data, fed) -> list[Site]:
  """The sites of `data` under `fed` (config.federated), each with its own split."""
  names, index = site_labels(data, fed.site_split, fed.min_site_stays)
  groups = getattr(data, "groups", None)
  sites = []
  for k, name in enumerate(names):
    members = np.flatnonzero(index == k)
    if not len(members):
      raise InputError(f"federated site {name!r} ({fed.site_split}) has no examples in "
                       f"this data set: check config.task.dataset / set_dir, or pick "
                       "another config.federated.site_split")
    local = splits_lib.make_splits(
        data.labels[members], scheme="random", test_fraction=fed.test_fraction,
        val_fraction=fed.val_fraction, seed=fed.split_seed,
        groups=None if groups is None else np.asarray(groups)[members])
    split = {part: members[idx] for part, idx in local.items()}
    empty = [part for part in ("train", "val", "test") if not len(split[part])]
    if empty:
      raise InputError(f"federated site {name!r} has {len(members)} stays: too few for "
                       f"a {'/'.join(empty)} split (config.federated.test_fraction / "
                       "val_fraction)")
    sites.append(Site(name, split))
  return sites


def pooled(sites: list[Site]) -> dict[str, np.ndarray]:
  """The union of the sites' splits (centralised training)."""
  return {part: np.sort(np.concatenate([s.splits[part] for s in sites]))
          for part in ("train", "val", "test")}


def find_site(sites: list[Site], key) -> int:
  """Index of the site named `key` (a name or an index, as a SuperNode's node config)."""
  names = [s.name for s in sites]
  if isinstance(key, (int, np.integer)) or str(key).lstrip("-").isdigit():
    k = int(key)
    if 0 <= k < len(sites):
      return k
  elif str(key) in names:
    return names.index(str(key))
  raise InputError(f"node config site={key!r}: no such site; sites are "
                   f"{', '.join(f'{i}={n!r}' for i, n in enumerate(names))}")


def vocabulary_indices(task_cfg, sites: list[Site]):
  """Code models: the stays whose codes make the shared vocabulary (all sites' training
  stays; a deployment would ship a published code list instead). None otherwise."""
  from medjax.ehr import task as task_lib  # pylint: disable=import-outside-toplevel
  if task_lib.input_kind(task_cfg.model) != "codes":
    return None
  return pooled(sites)["train"]
