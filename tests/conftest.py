"""Shared fixtures: the real DeepH example data in ../shared, skipped with a reason when absent."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "deeph-dock"


def shared_path(relative: str) -> Path:
    """A path under ../shared/data/deeph-dock; the calling test is skipped when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"needs the shared DeepH example data at {path} (../shared beside the repository)")
    return path


@pytest.fixture
def mote2_dir() -> Path:
    return shared_path("compute/eigen/eigen.clean/MoTe2")


@pytest.fixture
def molecule_set_dir() -> Path:
    return shared_path("analyze/dataset/inputs.clean/dft")


@pytest.fixture
def legacy_mote2_dir() -> Path:
    return shared_path("convert/deeph/deeph_legacy_data/MoTe2")


@pytest.fixture
def updated_mote2_dir() -> Path:
    return shared_path("convert/deeph/deeph_updated_data/MoTe2")
