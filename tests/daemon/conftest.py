from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.harness import Daemon, short_dir
from tests.integration.harness import Keys, make_keys


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return make_keys(tmp_path / "keys")


@pytest.fixture
def daemon(tmp_path: Path, keys: Keys) -> Iterator[Daemon]:
    with short_dir() as sockets:
        d = Daemon(tmp_path, sockets, keys)
        try:
            yield d
        finally:
            d.close()
