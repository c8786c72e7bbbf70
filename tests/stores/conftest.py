"""The contract suite's fixture: one fresh store of each backend (see backends.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stores.backends import BACKENDS, StoreFactory
from tests.stores.backends import pytest_pyfunc_call as pytest_pyfunc_call
from tests.stores.backends import small_fs as small_fs


@pytest.fixture(params=sorted(BACKENDS))
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """``async with open_store() as store:`` gives an empty store of the backend under test."""
    backend = BACKENDS[request.param]
    return lambda: backend(tmp_path)
