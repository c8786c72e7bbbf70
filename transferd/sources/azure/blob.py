"""One blob of an Azure Blob source, read as listed: in ranges under If-Match (or its version
id), its MD5 checked against Azure's Content-MD5 (the policy is in sources/azure/source.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceModifiedError
from azure.storage.blob import BlobProperties

from transferd.core.source_entry import SourceEntry
from transferd.errors import SignInError, SourceChangedError, SourceError
from transferd.sources.base import InlineItem, Item

if TYPE_CHECKING:
    from transferd.sources.azure.source import AzureBlobSource

FILE_MODE = 0o600
"""Blobs have no permission bits; their files are restored readable by their owner only."""
REREADS = 3
FAILURES = (TimeoutError, AzureError, OSError, SignInError)


class BlobItem:
    """One blob as listed: read in ranges under If-Match (or its version id), MD5 checked."""

    def __init__(self, source: AzureBlobSource, blob: BlobProperties, entry: SourceEntry) -> None:
        self.source, self.entry = source, entry
        self.name: str = blob.name
        self.relative_name = blob.name[len(source.location.prefix) :]
        self._props = blob
        self._stale = False
        self._started = False
        self._finished: str | None = None
        self._md5 = hashlib.md5(usedforsecurity=False)

    @property
    def read_etag(self) -> str | None:
        """The ETag the blob was read at; the listed one when the pipeline reused it from the
        journal without reading (it only ever skips a read for that); None if reading failed."""
        return self._finished if self._started else self._props.etag

    async def read_whole(self) -> Item:
        """An InlineItem with the blob's bytes, or this item (to fail when read) on an error."""
        for _ in range(REREADS):
            try:
                data = b"".join([bytes(b) async for b in self.blocks()])
                return InlineItem(await self.finish(len(data), ""), data)
            except SourceChangedError:
                continue
            except SourceError as e:
                return _FailingItem(self.entry, e)
        return _FailingItem(self.entry, SourceError(f"{self.name} changed {REREADS} times"))

    async def blocks(self) -> AsyncIterator[bytes | memoryview]:
        self._started = True
        if self._stale:
            await self._refresh()
        self._md5 = hashlib.md5(usedforsecurity=False)
        size, step = self._props.size or 0, self.source.options.range_size
        ranges = [(off, min(step, size - off)) for off in range(0, size, step)]
        window: list[asyncio.Task[bytes]] = []
        try:
            for start in range(0, len(ranges), 1):
                while len(window) < self.source.options.parallel_ranges and start + len(
                    window
                ) < len(ranges):
                    off, length = ranges[start + len(window)]
                    window.append(asyncio.create_task(self._range(off, length)))
                block = await window.pop(0)
                self._md5.update(block)
                yield block
        finally:
            for task in window:
                task.cancel()
            await asyncio.gather(*window, return_exceptions=True)

    async def _range(self, offset: int, length: int) -> bytes:
        props, source = self._props, self.source
        client = source.container().get_blob_client(self.name)
        condition: dict[str, Any] = (
            {"version_id": props.version_id}
            if props.version_id
            else {"etag": props.etag, "match_condition": MatchConditions.IfNotModified}
        )

        async def read() -> bytes:
            stream = await client.download_blob(offset=offset, length=length, **condition)
            data: bytes = await stream.readall()
            return data

        try:
            data = await source.retrying(f"read {self.name}", read)
        except ResourceModifiedError:
            self._stale = True
            raise SourceChangedError(f"{self.name} changed while it was read") from None
        except FAILURES as exc:
            raise source.error(exc, f"read {self.name}") from None
        if len(data) != length:
            self._stale = True
            raise SourceChangedError(
                f"{self.name}: {len(data)} bytes came for a {length}-byte range"
            )
        return data

    async def _refresh(self) -> None:
        client = self.source.container().get_blob_client(self.name)
        try:
            props = await self.source.retrying(
                f"read the properties of {self.name}", client.get_blob_properties
            )
        except FAILURES as exc:
            raise self.source.error(exc, f"read {self.name}") from None
        self._props, self._stale = props, False
        self.entry = entry_for(self.entry.path.decode(), props, _raw_name(self.entry))

    async def finish(self, size: int, blake3: str) -> SourceEntry:
        props = self._props
        if size != (props.size or 0):
            self._stale = True
            raise SourceChangedError(f"{self.name} is {props.size} bytes but {size} were read")
        digest = self._md5.digest()
        stated = props.content_settings.content_md5 if props.content_settings else None
        if stated and bytes(stated) != digest:
            self._stale = True
            raise SourceChangedError(f"{self.name}: what was read does not match its Content-MD5")
        e = self.entry
        extra = json.loads(e.extra or "{}")
        extra.update(
            {"content_md5": base64.b64encode(digest).decode(), "md5_checked": bool(stated)}
        )
        text = json.dumps(extra, sort_keys=True, separators=(",", ":"))
        self._finished = props.etag
        return SourceEntry(e.path, e.kind, e.mode, e.mtime_ns, size, None, blake3 or None, text,
                     e.fingerprint)  # fmt: skip


class _FailingItem:
    """A blob that could not be read while listing: reading it raises, so the pipeline records
    it among the items not copied (exit code 3) and the run goes on."""

    def __init__(self, entry: SourceEntry, error: SourceError) -> None:
        self.entry, self._error = entry, error

    async def blocks(self) -> AsyncIterator[bytes | memoryview]:
        for _ in ():  # an async generator that raises on its first step
            yield b""
        raise self._error

    async def finish(
        self, size: int, blake3: str
    ) -> SourceEntry:  # pragma: no cover - never reached
        raise self._error


def entry_for(path: str, blob: BlobProperties, raw_name: str | None) -> SourceEntry:
    extra: dict[str, Any] = {"etag": blob.etag}
    if blob.version_id:
        extra["version_id"] = blob.version_id
    if raw_name is not None:
        extra["blob_name"] = raw_name
    mtime = int(blob.last_modified.timestamp()) * 10**9 if blob.last_modified else None
    fingerprint = f"{blob.etag}|{blob.version_id or ''}|{blob.size}"
    return SourceEntry(path.encode(), "file", FILE_MODE, mtime, blob.size,
                 extra=json.dumps(extra, sort_keys=True, separators=(",", ":")),
                 fingerprint=fingerprint)  # fmt: skip


def _raw_name(entry: SourceEntry) -> str | None:
    name = json.loads(entry.extra or "{}").get("blob_name")
    return name if isinstance(name, str) else None
