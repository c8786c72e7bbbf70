"""An Azure Blob container (or a prefix of one), read as a source with the async Azure SDK.

**Point in time.** The listing is taken once, at the start, in name order; each blob is then
read *as listed*: by its version id where the account keeps versions (a version never changes),
otherwise with ``If-Match: <listed ETag>`` on every ranged read. A blob rewritten after the
listing fails that condition (412): the item raises SourceChangedError, and when the pipeline
reads it again (protocol: sources/base.py) the blob's current properties are fetched and it is
read whole at its new ETag. So every blob in the copy is one consistent version of itself, and
the catalog records which (``etag``, ``version_id``). A blob deleted after the listing is an
item that could not be read (exit code 3).

**Integrity.** Each blob's MD5 is computed while it streams and compared with the Content-MD5
Azure keeps for it (set at upload by most tools); a mismatch is read again, then reported. The
MD5 is recorded in the entry (``content_md5``, base64 as Azure writes it; ``md5_checked`` says
whether Azure had one to compare with), so an auditor can match the copy against Azure's own
figures without reading the copy.

**Throughput.** Blobs up to INLINE_MAX are read while listing, up to SMALL_READS at once, so a
container of a million small blobs costs a million overlapping requests, not a million round
trips in a row. Larger blobs are read in ranges of ``range_size``, ``parallel_ranges`` at once,
and handed to the pipeline in order.

**Failures.** Throttling (503 ServerBusy, 429), other 5xx, 408 and dropped connections are
retried with full-jitter backoff (the SDK's own retries are off, so there is one policy, here).
A refused credential, a missing container or an unreachable endpoint ends the run with a
SourceError naming the account and container; secrets never appear in a message or a log line
(the SDK's request logging is turned down to warnings).

Names: sources/azure/names.py. Credentials and endpoints: sources/azure/auth.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobProperties
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from transferd.core.source_entry import SourceEntry
from transferd.errors import SourceChangedError, SourceError
from transferd.sources.azure.auth import AzureLocation, AzureOptions, resolve
from transferd.sources.azure.names import PathMapper
from transferd.sources.base import InlineItem, Item, one_per_batch

T = TypeVar("T")
log = logging.getLogger(__name__)
logging.getLogger("azure").setLevel(logging.WARNING)  # request lines, headers: not for our logs

INLINE_MAX = 256 * 1024
"""Blobs up to this size are read while listing (one request each, overlapped)."""
SMALL_READS = 16
BATCH_ITEMS = 256
BATCH_BYTES = 16 * 1024 * 1024
"""A listing batch ends at this many blobs or inline bytes: bounds the memory one batch holds."""
FILE_MODE = 0o600
"""Blobs have no permission bits; their files are restored readable by their owner only."""
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_REREADS = 3


class AzureBlobSource:
    kind = "azure-blob"
    independent_streams = False
    """Large blobs are read in the listing's order (their ranges in parallel, BlobItem)."""

    def __init__(
        self,
        url: str,
        options: AzureOptions | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.options = options or AzureOptions()
        self.location: AzureLocation = resolve(url, self.options)
        self.description = self.location.description
        self._sleep = sleep
        self._service: BlobServiceClient | None = None

    def identity(self) -> dict[str, Any]:
        loc = self.location
        return {"kind": self.kind, "account": loc.account, "container": loc.container,
                "prefix": loc.prefix, "endpoint": loc.endpoint}  # fmt: skip

    def container(self) -> ContainerClient:
        if self._service is None:
            self._service = BlobServiceClient(
                self.location.endpoint, credential=self.location.credential, retry_total=0
            )
        return self._service.get_container_client(self.location.container)

    async def close(self) -> None:
        if self._service is not None:
            await self._service.close()
            self._service = None

    # --- retries and errors -------------------------------------------------------------------

    async def retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, retried on throttling, server errors and dropped connections."""
        attempt = 1
        while True:
            try:
                return await call()
            except ResourceModifiedError:
                raise
            except (TimeoutError, HttpResponseError, AzureError, OSError) as exc:
                status = getattr(exc, "status_code", None)
                retry = status in RETRY_STATUSES or (status is None and _is_transport(exc))
                if not retry or attempt >= self.options.attempts:
                    raise
                delay = random.random() * min(30.0, 0.5 * 2 ** (attempt - 1))  # noqa: S311 - jitter
                log.warning("%s: %s; retrying in %.1f s", what, _short(exc), delay)
                await self._sleep(delay)
                attempt += 1

    def error(self, exc: BaseException, what: str) -> SourceError:
        loc = self.location
        if isinstance(exc, ClientAuthenticationError) or getattr(exc, "status_code", 0) == 403:
            return SourceError(
                f"Azure refused the credential for account {loc.account} ({what})",
                hint="check the connection string, SAS or key (--azure-credential-file or "
                "AZURE_STORAGE_*); a SAS needs read and list permissions",
            )
        if isinstance(exc, ResourceNotFoundError) and "ContainerNotFound" in str(exc):
            return SourceError(f"container {loc.container} does not exist at {loc.endpoint}")
        if _is_transport(exc):
            return SourceError(f"cannot reach Azure at {loc.endpoint} ({what}): {_short(exc)}")
        return SourceError(f"cannot {what}: {_short(exc)}")

    # --- the source ---------------------------------------------------------------------------

    async def size_hint(self) -> int | None:
        total = 0
        try:
            async for blob in self.container().list_blobs(name_starts_with=self.location.prefix):
                total += blob.size or 0
        except (TimeoutError, AzureError, OSError):
            return None
        return total

    def batches(self) -> AsyncGenerator[Sequence[Item], None]:
        return one_per_batch(self.items())

    async def items(self) -> AsyncIterator[Item]:
        mapper = PathMapper()
        prefix = self.location.prefix
        pages = self.container().list_blobs(name_starts_with=prefix).by_page()
        batch: list[tuple[BlobProperties, SourceEntry]] = []
        inline_bytes = 0
        while True:
            try:
                page = await self.retrying("list blobs", lambda: anext(pages))
            except StopAsyncIteration:
                break
            except (TimeoutError, AzureError, OSError) as exc:
                raise self.error(exc, f"list container {self.location.container}") from None
            async for blob in page:
                name = blob.name[len(prefix) :]
                path, mapped = mapper.path(name)
                batch.append((blob, _entry(path, blob, blob.name if mapped else None)))
                if (blob.size or 0) <= INLINE_MAX:
                    inline_bytes += blob.size or 0
                if len(batch) >= BATCH_ITEMS or inline_bytes >= BATCH_BYTES:
                    for item in await self._resolve(batch):
                        yield item
                    batch, inline_bytes = [], 0
        for item in await self._resolve(batch):
            yield item

    async def _resolve(self, batch: list[tuple[BlobProperties, SourceEntry]]) -> list[Item]:
        """The batch's items in order, its small blobs read (SMALL_READS at once)."""
        slots = asyncio.Semaphore(SMALL_READS)

        async def one(blob: BlobProperties, entry: SourceEntry) -> Item:
            item = BlobItem(self, blob, entry)
            if (blob.size or 0) > INLINE_MAX:
                return item
            async with slots:
                return await item.read_whole()

        return list(await asyncio.gather(*(one(b, e) for b, e in batch)))


class BlobItem:
    """One blob as listed: read in ranges under If-Match (or its version id), MD5 checked."""

    def __init__(self, source: AzureBlobSource, blob: BlobProperties, entry: SourceEntry) -> None:
        self.source, self.entry = source, entry
        self.name: str = blob.name
        self._props = blob
        self._stale = False
        self._md5 = hashlib.md5(usedforsecurity=False)

    async def read_whole(self) -> Item:
        """An InlineItem with the blob's bytes, or this item (to fail when read) on an error."""
        for _ in range(_REREADS):
            try:
                data = b"".join([bytes(b) async for b in self.blocks()])
                return InlineItem(await self.finish(len(data), ""), data)
            except SourceChangedError:
                continue
            except SourceError as e:
                return _FailingItem(self.entry, e)
        return _FailingItem(self.entry, SourceError(f"{self.name} changed {_REREADS} times"))

    async def blocks(self) -> AsyncIterator[bytes | memoryview]:
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
        except (TimeoutError, AzureError, OSError) as exc:
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
        except (TimeoutError, AzureError, OSError) as exc:
            raise self.source.error(exc, f"read {self.name}") from None
        self._props, self._stale = props, False
        self.entry = _entry(self.entry.path.decode(), props, _raw_name(self.entry))

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


def _entry(path: str, blob: BlobProperties, raw_name: str | None) -> SourceEntry:
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


def _is_transport(exc: BaseException) -> bool:
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    return isinstance(exc, ServiceRequestError | ServiceResponseError | OSError | TimeoutError)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
