import pytest


@pytest.fixture(scope="session")
def molecule_cache(tmp_path_factory):
  """One featurisation cache for the whole session (the embedded TPSA file is 5k)."""
  return str(tmp_path_factory.mktemp("molecule_cache"))
