"""The send pipeline alone, in one process: read, chunk, hash, compress, seal, pack; no network.

    inprocess.py SOURCE_DIR [--level 1] [--workers N] [--json]

The store is a NullStore that checks nothing and keeps nothing (the pack's SHA-256 name is still
computed by the pipeline, as for a real store); the journal is a real one in a temp directory,
so its cost is counted. Prints one JSON line: seconds, bytes read, bytes the packs hold.
Run as its own process by perf/bench so its CPU time and peak RSS are its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from transferd.core.jobkey import JobKey
from transferd.send.config import Counters, PipelineConfig
from transferd.send.journal import Journal
from transferd.send.pipeline import Pipeline
from transferd.sources.directory import DirectorySource


class NullStore:
    """Acknowledges every object at once and keeps nothing: what is left is the pipeline."""

    description = "null"

    def __init__(self) -> None:
        self.stored = 0
        self.objects = 0

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        self.stored += len(data)
        self.objects += 1

    async def has_objects(self, job: str, names: Sequence[str]) -> set[str]:
        return set()

    async def get_object(
        self, job: str, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        raise NotImplementedError

    async def list_objects(self, job: str) -> AsyncIterator[tuple[str, int]]:
        return
        yield

    async def delete_object(self, job: str, name: str) -> None:
        pass

    async def put_manifest(self, job: str, sequence: int, data: bytes) -> None:
        pass

    async def get_manifest(self, job: str, sequence: int) -> bytes:
        raise NotImplementedError

    async def list_manifests(self, job: str) -> list[int]:
        return []

    async def list_jobs(self) -> list[str]:
        return []

    async def close(self) -> None:
        pass


async def run_pipeline(source_dir: Path, config: PipelineConfig) -> dict[str, float]:
    store = NullStore()
    with tempfile.TemporaryDirectory(prefix="transferd-inprocess-") as tmp:
        journal = Journal(Path(tmp) / "journal.sqlite")
        counters = Counters()
        pipeline = Pipeline(
            "bench",
            JobKey(bytes(range(32))),
            store,  # type: ignore[arg-type]
            journal,
            1,
            config,
            counters,
        )
        started = time.perf_counter()
        await pipeline.run(DirectorySource(source_dir))
        seconds = time.perf_counter() - started
        journal.close()
    return {
        "seconds": seconds,
        "bytes_read": counters.bytes_read,
        "stored_bytes": store.stored,
        "packs": store.objects,
        "entries": counters.entries,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", type=Path)
    p.add_argument("--level", type=int, default=PipelineConfig().level)
    p.add_argument("--workers", type=int, default=PipelineConfig().workers)
    p.add_argument("--uvloop", action="store_true", help="run on uvloop, as the CLI does")
    p.add_argument("--switch-interval", type=float, default=None)
    args = p.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    config = PipelineConfig(level=args.level, workers=args.workers)
    coro = run_pipeline(args.source, config)
    if args.uvloop:
        from transferd.util.runtime import run

        result = run(coro)
    else:
        result = asyncio.run(coro)
    result["pid"] = os.getpid()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
