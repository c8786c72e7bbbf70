"""Fixtures of the Azure Blob source tests: one Azurite per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sources.azure.azurite import Azurite, running_azurite
from tests.stores.backends import pytest_pyfunc_call as pytest_pyfunc_call


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with running_azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server
