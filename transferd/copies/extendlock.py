"""``transferd copy extend-lock``: retain every stored object of a copy for longer.

A copy meant to be kept for years is stored with a retention of its own (``--object-lock``); as
the audit or the legal hold that asks for it moves, the retention must move too, before it ends.
This reads the current retention of every object and manifest of every job of the copy, and of
every copy manifest (a HEAD each, many at once), and sets ``now + DAYS`` where that is later
(PutObjectRetention on the version HEAD named). It only ever lengthens: an end already later is
kept, and COMPLIANCE is never turned into GOVERNANCE. Lease records are left alone (never locked).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from transferd.errors import ObjectNotFoundError, StoreError
from transferd.stores.s3lock import LockPolicy, Retention

if TYPE_CHECKING:
    from transferd.stores.s3 import S3Store

BATCH = 1000
PARALLEL = 16


@dataclass
class Extended:
    extended: int = 0
    kept: int = 0
    """Already retained at least that long, in at least that mode."""
    missing: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"extended": self.extended, "kept": self.kept, "missing": self.missing,
                "refused": [{"key": k, "error": e} for k, e in self.refused]}  # fmt: skip


async def keys_of_copy(s3: S3Store, copy: str | None, jobs: list[str]) -> list[str]:
    """Every copy manifest of ``copy`` (if any), and every manifest and object of ``jobs``."""
    keys = [] if copy is None else [
        s3.copy_record_key(copy, "manifests", n)
        for n in await s3.list_copy_records(copy, "manifests")
    ]  # fmt: skip
    for job in jobs:
        keys += [s3.manifest_key(job, *n) for n in await s3.list_manifests(job)]
        keys += [s3.object_key(job, name) async for name, _ in s3.list_objects(job)]
    return keys


async def extend(s3: S3Store, keys: list[str], policy: LockPolicy) -> Extended:
    done = Extended()
    now = datetime.now(UTC)
    slots = asyncio.Semaphore(PARALLEL)

    async def one(held: Retention) -> None:
        change = held.extended(policy, now)
        if change is None:
            done.kept += 1
            return
        async with slots:
            try:
                await s3.set_retention(held, *change, "extend-lock")
            except StoreError as e:
                done.refused.append((held.key, e.message))
                return
        done.extended += 1

    for start in range(0, len(keys), BATCH):
        batch = keys[start : start + BATCH]
        try:
            found = await s3.retention(batch)
        except ObjectNotFoundError:  # deleted since it was listed: one at a time, to count it
            found = []
            for key in batch:
                try:
                    found += await s3.retention([key])
                except ObjectNotFoundError:
                    done.missing += 1
        await asyncio.gather(*(one(r) for r in found))
    return done
