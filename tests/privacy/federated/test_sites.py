"""Sites of a data set and their splits, against a numpy group-by of the raw data."""

import types

import ml_collections
import numpy as np
import pytest

from medjax.engine.errors import InputError
from medjax.ehr import synthetic
from medjax.privacy.federated import sites as sites_lib


@pytest.fixture(scope="module")
def data():
  return synthetic.generate(160, seed=3)


def _fed(**kw):
  c = ml_collections.ConfigDict(dict(site_split="physionet_icu_type", min_site_stays=0,
                                     test_fraction=0.2, val_fraction=0.2, split_seed=0))
  c.update(kw)
  return c


def test_site_counts_match_a_group_by_of_the_icu_type(data):
  sites = sites_lib.make_sites(data, _fed())
  icu = data.static[:, data.static_names.index("ICUType")].astype(int)
  codes, counts = np.unique(icu, return_counts=True)
  assert [s.name for s in sites] == [sites_lib.ICU_TYPES[c] for c in codes]
  for site, code, count in zip(sites, codes, counts):
    parts = [site.splits[p] for p in ("train", "val", "test")]
    members = np.concatenate(parts)
    assert len(members) == count == len(np.unique(members))
    assert np.all(icu[members] == code)
    deaths = data.labels[icu == code].sum()
    assert sum(data.labels[p].sum() for p in parts) == deaths
    # stratified: the test split holds round(0.2 * deaths) of the site's deaths
    assert data.labels[site.splits["test"]].sum() == round(0.2 * deaths)
  pooled = sites_lib.pooled(sites)
  assert sum(len(v) for v in pooled.values()) == len(data)


def test_a_site_without_stays_is_named(data):
  icu_col = data.static_names.index("ICUType")
  static = data.static.copy()
  static[static[:, icu_col] == 2, icu_col] = 1  # no Cardiac Surgery Recovery stays
  with pytest.raises(InputError, match="site 'Cardiac Surgery Recovery'.*no examples"):
    sites_lib.make_sites(_replace_static(data, static), _fed())


def _replace_static(data, static):
  import dataclasses  # pylint: disable=import-outside-toplevel
  return dataclasses.replace(data, static=static)


def test_a_site_too_small_to_split_is_named(data):
  surgical = np.flatnonzero(data.static[:, 3] == 4)
  small = _replace_static(data, data.static.copy())
  small.static[surgical[2:], 3] = 1  # 2 Surgical ICU stays left
  with pytest.raises(InputError, match="site 'Surgical ICU' has 2 stays: too few"):
    sites_lib.make_sites(small, _fed())


def test_unknown_split_and_wrong_data_set(data):
  with pytest.raises(InputError, match="site_split='by_ward': unknown"):
    sites_lib.make_sites(data, _fed(site_split="by_ward"))
  with pytest.raises(InputError, match="'eicu_hospital' needs the eICU data set"):
    sites_lib.make_sites(data, _fed(site_split="eicu_hospital"))


def test_eicu_hospitals_keep_those_with_enough_stays():
  rng = np.random.default_rng(0)
  hospitals = np.repeat(["73", "110", "264"], [30, 4, 25])
  fake = types.SimpleNamespace(labels=(rng.uniform(size=59) < 0.3).astype(np.int32),
                               sites=hospitals, groups=np.arange(59))
  names, index = sites_lib.site_labels(fake, "eicu_hospital", min_site_stays=10)
  kept = {n: int(np.sum(index == k)) for k, n in enumerate(names)}
  assert kept == {"hospital 264": 25, "hospital 73": 30}
  assert np.all(index[hospitals == "110"] == -1)
  with pytest.raises(InputError, match="min_site_stays=50"):
    sites_lib.site_labels(fake, "eicu_hospital", min_site_stays=50)


def test_find_site_by_name_or_index(data):
  sites = sites_lib.make_sites(data, _fed())
  assert sites_lib.find_site(sites, "Medical ICU") == 2
  assert sites_lib.find_site(sites, "1") == 1
  with pytest.raises(InputError, match="site='ward 9': no such site"):
    sites_lib.find_site(sites, "ward 9")


@pytest.mark.slow
def test_eicu_demo_hospitals_match_a_pandas_group_by():
  import os  # pylint: disable=import-outside-toplevel
  import pandas as pd  # pylint: disable=import-outside-toplevel
  from medjax.ehr import codes  # pylint: disable=import-outside-toplevel
  root = os.path.join(os.environ.get("MEDJAX_SHARED_DATA", ""), "eicu_demo")
  if not os.path.isdir(root):
    pytest.skip("eICU demo not in $MEDJAX_SHARED_DATA")
  data = codes.load_eicu(root)
  patients = pd.read_csv(os.path.join(root, "patient.csv.gz"))
  patients = patients[patients.hospitaldischargestatus.isin(["Alive", "Expired"])]
  counts = patients.groupby("hospitalid").size()
  expected = {f"hospital {h}": n for h, n in counts.items() if n >= 15}
  sites = sites_lib.make_sites(data, _fed(site_split="eicu_hospital", min_site_stays=15,
                                          test_fraction=0.3, val_fraction=0.25))
  got = {s.name: sum(len(v) for v in s.splits.values()) for s in sites}
  assert got == expected
