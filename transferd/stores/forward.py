"""A store that passes every call to another: the base of the wrappers that change only some.

A wrapper (stores/throttle.py's valve, copies/fence.py's lease fence) overrides the calls it
guards, the writes, and inherits the rest from here, so a method added to the Store protocol
(stores/base.py) is forwarded in one place instead of each wrapper's copy of the list.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from transferd.core.manifest import ManifestKey
from transferd.stores.base import Store


class ForwardingStore:
    """Every Store call, passed to ``inner`` unchanged."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.description = inner.description

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        await self.inner.put_object(job, name, data)

    async def put_manifest(self, job: str, sequence: int, data: bytes, epoch: int = 0) -> None:
        await self.inner.put_manifest(job, sequence, data, epoch)

    async def has_objects(self, job: str, names: Sequence[str]) -> set[str]:
        return await self.inner.has_objects(job, names)

    async def get_object(
        self, job: str, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        return await self.inner.get_object(job, name, offset, length)

    def list_objects(self, job: str) -> AsyncIterator[tuple[str, int]]:
        return self.inner.list_objects(job)

    async def delete_object(self, job: str, name: str) -> None:
        await self.inner.delete_object(job, name)

    async def get_manifest(self, job: str, sequence: int, epoch: int = 0) -> bytes:
        return await self.inner.get_manifest(job, sequence, epoch)

    async def list_manifests(self, job: str) -> list[ManifestKey]:
        return await self.inner.list_manifests(job)

    async def list_jobs(self) -> list[str]:
        return await self.inner.list_jobs()

    async def close(self) -> None:
        await self.inner.close()
