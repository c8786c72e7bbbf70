"""A pristine copy is sent once per test session; each test damages a copy of its own."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import run  # noqa: F401 - the CLI tests' fixture, shared here
from tests.verify.copies import Copy, make_copy
from transferd.report.model import Report
from transferd.stores.local import LocalStore
from transferd.verify.run import VerifyOptions, verify_copy
from transferd.verify.seen import SeenState


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Copy:
    return make_copy(tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def copy(pristine: Copy, tmp_path: Path) -> Copy:
    """A copy of the pristine copy (store, source and sender state) to damage."""
    root = tmp_path / "copy"
    shutil.copytree(pristine.root, root, symlinks=True)
    return Copy(
        root=root,
        store_dir=root / "store",
        source=root / "source",
        state=root / "state",
        sender_secret=pristine.sender_secret,
        identity=pristine.identity,
    )


Verify = Callable[..., Report]


@pytest.fixture
def verify(copy: Copy, tmp_path: Path) -> Verify:
    """Verify ``copy`` without the key, remembering manifests in one seen-state file."""
    seen_path = tmp_path / "seen.json"

    def verify_now(**kwargs: object) -> Report:
        async def main() -> Report:
            store = LocalStore(copy.store_dir)
            options = VerifyOptions(seen=SeenState(seen_path), workers=2)
            for name, value in kwargs.items():
                setattr(options, name, value)
            return await verify_copy(store, copy.job, copy.sender, options)

        return asyncio.run(main())

    return verify_now
