"""Keys, stores and a real send to make copies that the reading side is tested against."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from transferd.core.keys import RecipientIdentity, SenderSecretKey
from transferd.send.config import PipelineConfig
from transferd.send.run import SendResult, send
from transferd.sources.directory import DirectorySource
from transferd.stores.base import Store
from transferd.stores.local import LocalStore
from transferd.stores.memory import MemoryStore


@dataclass(frozen=True)
class Keys:
    sender: SenderSecretKey
    owner: RecipientIdentity
    other: RecipientIdentity


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        SenderSecretKey(bytes(range(32))),
        RecipientIdentity(bytes(range(1, 33))),
        RecipientIdentity(bytes(range(2, 34))),
    )


def local_store(root: Path) -> Store:
    return LocalStore(root)


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return local_store(tmp_path / "store")


SendTree = Callable[..., SendResult]


def send_tree(
    store: Store,
    source: Path,
    keys: Keys,
    state: Path,
    job: str = "tree",
    recipients: list[RecipientIdentity] | None = None,
) -> SendResult:
    """One real send run of ``source`` into ``store`` (a fresh event loop, 2 workers)."""
    owners = [r.public() for r in (recipients or [keys.owner])]

    async def run() -> SendResult:
        return await send(
            source=DirectorySource(source),
            store=store,
            job=job,
            sender=keys.sender,
            recipients=owners,
            state_dir=state,
            config=PipelineConfig(workers=2),
            rng=os.urandom,
        )

    return asyncio.run(run())
