"""A cancellation that a source's own code lets escape fails the run or the item; it never hangs.

Libraries (HTTP clients, database drivers) sometimes end work of their own by cancelling it, and
the CancelledError can leak to their caller. The task group would take it for transferd's own
cancellation: the producer would end without its end marker and the packer wait forever.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path

import pytest

from tests.sent import Keys
from transferd.errors import SourceError
from transferd.send.config import PipelineConfig
from transferd.send.run import SendResult, send
from transferd.sources.base import Item
from transferd.sources.directory import DirectorySource, FileItem
from transferd.stores.memory import MemoryStore

LIMIT = 20.0
"""Seconds: a hang fails the test instead of the suite."""


class _LeakyFile:
    """A large file whose reading is cancelled by 'the library' after its first block."""

    def __init__(self, item: FileItem) -> None:
        self.entry = item.entry
        self._item = item

    async def blocks(self) -> AsyncIterator[bytes | memoryview]:
        async for block in self._item.blocks():
            yield block
            raise asyncio.CancelledError

    async def finish(self, size: int, blake3: str) -> object:
        raise AssertionError("never reached")


class LeakySource(DirectorySource):
    def __init__(self, root: Path, *, while_listing: bool) -> None:
        super().__init__(root)
        self.while_listing = while_listing

    async def batches(self) -> AsyncGenerator[list[Item], None]:
        async for batch in super().batches():
            if self.while_listing:
                yield batch
                raise asyncio.CancelledError
            yield [_LeakyFile(i) if isinstance(i, FileItem) else i for i in batch]  # type: ignore[misc]


def _tree(root: Path) -> Path:
    root.mkdir()
    for i in range(600):
        (root / f"small-{i:03}").write_bytes(os.urandom(100))
    (root / "large").write_bytes(os.urandom(3 << 20))
    return root


async def _send(source: DirectorySource, keys: Keys, state: Path) -> SendResult:
    return await send(
        source=source,
        store=MemoryStore(),
        job="leaky",
        sender=keys.sender,
        recipients=[keys.owner.public()],
        state_dir=state,
        config=PipelineConfig(workers=2),
    )


def test_a_leak_while_listing_fails_the_run_with_a_message(tmp_path: Path, keys: Keys) -> None:
    source = LeakySource(_tree(tmp_path / "tree"), while_listing=True)

    with pytest.raises(SourceError, match="a library it uses cancelled its own work") as caught:
        asyncio.run(asyncio.wait_for(_send(source, keys, tmp_path / "state"), LIMIT))

    assert caught.value.hint is not None
    assert "run the same send again" in caught.value.hint


def test_a_leak_while_reading_a_file_skips_that_file(tmp_path: Path, keys: Keys) -> None:
    source = LeakySource(_tree(tmp_path / "tree"), while_listing=False)

    result = asyncio.run(asyncio.wait_for(_send(source, keys, tmp_path / "state"), LIMIT))

    assert [(p, m) for p, m in result.failures] == [
        (b"large", "reading the source stopped: a library it uses cancelled its own work")
    ]
    assert result.counters.entries == 600


def test_a_cancellation_asked_for_still_cancels(tmp_path: Path, keys: Keys) -> None:
    class Slow(DirectorySource):
        async def batches(self) -> AsyncGenerator[Sequence[Item], None]:
            async for batch in super().batches():
                yield batch
                await asyncio.sleep(3600)

    async def main() -> None:
        task = asyncio.create_task(_send(Slow(_tree(tmp_path / "tree")), keys, tmp_path / "st"))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(main(), LIMIT))
