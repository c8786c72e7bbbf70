"""Measure one agent's rate on this host: the send pipeline over a short sample, nothing stored.

The sample is the first ``limit`` bytes of a source (its own data, the figure that matters), or,
without a source, generated claim-like CSV (compresses about 2:1, like the exports it stands
for). The pipeline runs as ``send`` runs it (chunk, hash, compress, seal, pack) into a store that
keeps nothing, so the figure is this host's CPU rate; the network is the link's business and
``transferd plan`` weighs it separately.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from transferd.copies.capacity import Measured
from transferd.core.jobkey import JobKey
from transferd.core.source_entry import SourceEntry
from transferd.send.compose import SendOptions, compose_send
from transferd.send.pipeline import Pipeline
from transferd.send.state import open_job_state
from transferd.sources.base import (
    FailedItem,
    InlineItem,
    Item,
    MetaItem,
    Source,
    StreamItem,
    one_per_batch,
)
from transferd.stores.memory import MemoryStore

SAMPLE_BYTES = 128 * 1024 * 1024


class _Discard(MemoryStore):
    """Takes every pack and keeps nothing: the measure is of the pipeline, not of a store."""

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        return None


class _Limited:
    """At most ``limit`` bytes of ``inner``'s streams, the last one cut short (a batch of small
    files may overshoot it by one batch)."""

    independent_streams = False
    """Streams are read in order, so that the bytes taken are counted before listing on."""

    def __init__(self, inner: Source, limit: int) -> None:
        self.inner, self.limit, self.taken = inner, limit, 0
        self.kind, self.description = inner.kind, inner.description

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    async def size_hint(self) -> int | None:
        return self.limit

    async def items(self) -> AsyncIterator[Item]:
        async with contextlib.aclosing(self.batches()) as batches:
            async for batch in batches:
                for item in batch:
                    yield item

    async def batches(self) -> AsyncGenerator[Sequence[Item], None]:
        async with contextlib.aclosing(self.inner.batches()) as batches:
            async for batch in batches:
                taken: list[Item] = []
                for item in batch:
                    if self.taken >= self.limit:
                        break
                    if isinstance(item, MetaItem | FailedItem):
                        taken.append(item)
                    elif isinstance(item, InlineItem):
                        self.taken += len(item.data)
                        taken.append(item)
                    else:
                        taken.append(_Cut(item, self))
                if taken:
                    yield taken
                if self.taken >= self.limit:
                    return

    async def close(self) -> None:
        await self.inner.close()


class _Cut:
    def __init__(self, item: StreamItem, owner: _Limited) -> None:
        self.item, self.owner, self.entry = item, owner, item.entry

    async def blocks(self) -> AsyncIterator[bytes | memoryview]:
        async for block in self.item.blocks():
            room = self.owner.limit - self.owner.taken
            if room <= 0:
                return
            self.owner.taken += min(room, len(block))
            yield block[:room]

    async def finish(self, size: int, blake3: str) -> SourceEntry:
        e = self.entry
        return SourceEntry(
            e.path, e.kind, e.mode, e.mtime_ns, size, None, blake3, e.extra, e.fingerprint
        )


class _Generated:
    """Claim-like CSV rows, generated: a sample for hosts that have no source at hand."""

    kind, description = "generated", "generated claim-like CSV"
    independent_streams = True

    def __init__(self, size: int) -> None:
        self.size = size

    def batches(self) -> AsyncGenerator[Sequence[Item], None]:
        return one_per_batch(self.items())

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind}

    async def size_hint(self) -> int | None:
        return self.size

    async def items(self) -> AsyncIterator[Item]:
        yield _Rows(self.size)

    async def close(self) -> None:
        pass


class _Rows:
    def __init__(self, size: int) -> None:
        self.size = size
        self.entry = SourceEntry(b"claims.csv", "file", 0o600, 0, size, fingerprint="generated")

    async def blocks(self) -> AsyncIterator[bytes | memoryview]:
        rng = random.Random(1)  # noqa: S311 - test data, not a key
        lines = [
            f"{rng.randrange(10**9)};{rng.randrange(10**6)};GHM{rng.randrange(999):03d};"
            f"{rng.choice(['C', 'V', 'K', 'P'])}{rng.randrange(100)};{rng.random():.4f}\n"
            for _ in range(40_000)
        ]
        base = "".join(lines).encode()
        sent = 0
        while sent < self.size:
            # rotate the lines so that blocks differ (no cross-block deduplication flatters it)
            cut = rng.randrange(len(base))
            block = (base[cut:] + base[:cut])[: self.size - sent]
            sent += len(block)
            yield block

    async def finish(self, size: int, blake3: str) -> SourceEntry:
        e = self.entry
        return SourceEntry(
            e.path, e.kind, e.mode, e.mtime_ns, size, None, blake3, None, e.fingerprint
        )


async def measure(
    source: Source | None, options: SendOptions, limit: int = SAMPLE_BYTES
) -> Measured:
    """Run the pipeline over the sample; the source bytes per second and stored/source ratio."""
    sample: Source = _Limited(source, limit) if source is not None else _Generated(limit)
    composed = compose_send(options, source=sample, to=_Discard(), sender=None)
    config = composed.config
    with tempfile.TemporaryDirectory(prefix="transferd-plan-") as tmp:
        state = open_job_state(Path(tmp), "sample")
        try:
            pipeline = Pipeline(
                "sample", JobKey(os.urandom(32)), composed.store, state.journal, 1, config
            )
            started = time.monotonic()
            await pipeline.run(composed.source)
            seconds = max(time.monotonic() - started, 1e-6)
        finally:
            state.close()
    c = pipeline.counters
    read = max(c.bytes_read, 1)
    what = source.description if source is not None else sample.description
    return Measured(
        rate=read / seconds,
        ratio=max(c.bytes_sealed, 1) / read,
        source=f"measured here on {read / 1e6:,.0f} MB of {what}, {config.workers} workers",
    )
