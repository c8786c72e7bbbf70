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

**Directories and the end of the run.** Blobs are listed with their metadata: a blob marked
``hdi_isfolder=true`` is a directory (how an ADLS Gen2 account, hierarchical namespace, shows its
directories through the blob API; hadoop and AzCopy leave such markers on flat accounts too) and
is copied as one, never as an empty file. Once the last blob is read the prefix is listed again
and compared with what was read (sources/azure/relist.py): a blob modified, added or deleted
since is named and the run publishes nothing. On every kind of account: a hierarchical one has
no blob versions, so this is its only proof, and a flat one gets the same.

Names: sources/azure/names.py. Credentials and endpoints: sources/azure/auth.py; Entra ID
sign-in: sources/azure/identity.py and delegation.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

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
from transferd.errors import SignInError, SourceChangedError, SourceError
from transferd.sources.azure.auth import AzureLocation, AzureOptions, resolve
from transferd.sources.azure.blob import BlobItem, entry_for
from transferd.sources.azure.delegation import UserDelegationSas
from transferd.sources.azure.identity import (
    KEY,
    USER_DELEGATION,
    describe_failure,
)
from transferd.sources.azure.names import PathMapper
from transferd.sources.azure.relist import ReadLog, compare
from transferd.sources.base import Item, MetaItem, one_per_batch

T = TypeVar("T")
log = logging.getLogger(__name__)
logging.getLogger("azure").setLevel(logging.WARNING)  # request lines, headers: not for our logs

INLINE_MAX = 256 * 1024
"""Blobs up to this size are read while listing (one request each, overlapped)."""
SMALL_READS = 16
BATCH_ITEMS = 256
BATCH_BYTES = 16 * 1024 * 1024
"""A listing batch ends at this many blobs or inline bytes: bounds the memory one batch holds."""
DIR_MODE = 0o700
FAILURES = (TimeoutError, AzureError, OSError, SignInError)
"""What a request to Azure (or to Entra ID for its token) may raise."""
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


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
        self._closing: list[Any] = []
        """What ``close()`` closes besides the client: an Entra ID credential, a delegation."""
        self._delegation: UserDelegationSas | None = None

    def identity(self) -> dict[str, Any]:
        loc = self.location
        return {"kind": self.kind, "account": loc.account, "container": loc.container,
                "prefix": loc.prefix, "endpoint": loc.endpoint}  # fmt: skip

    async def connect(self) -> None:
        """Open the client, signed in as the options say (no request is made yet, but for a
        user delegation SAS, whose key is asked for here)."""
        if self._service is not None:
            return
        loc, options = self.location, self.options
        sign_in = options.sign_in
        credential: Any = loc.credential
        if sign_in.auth == USER_DELEGATION:
            self._delegation = UserDelegationSas(
                sign_in, loc.endpoint, loc.account, loc.container, options.ca_file
            )
            self._closing.append(self._delegation)
            try:
                credential = await self._delegation.credential()
            except FAILURES as exc:
                raise self.error(exc, "ask for a user delegation key") from None
        elif sign_in.auth != KEY:
            credential = sign_in.credential(options.ca_file)
            self._closing.append(credential)
        verify: dict[str, Any] = {}
        if options.ca_file is not None:
            verify["connection_verify"] = str(options.ca_file)
        self._service = BlobServiceClient(
            loc.endpoint, credential=credential, retry_total=0, **verify
        )

    def container(self) -> ContainerClient:
        if self._service is None:
            raise RuntimeError("AzureBlobSource.connect() was not awaited")
        return self._service.get_container_client(self.location.container)

    async def close(self) -> None:
        if self._service is not None:
            await self._service.close()
            self._service = None
        while self._closing:
            await self._closing.pop().close()

    # --- retries and errors -------------------------------------------------------------------

    async def retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, retried on throttling, server errors and dropped connections."""
        attempt = 1
        while True:
            try:
                if self._delegation is not None:
                    await self._delegation.refresh()
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
        loc, sign_in = self.location, self.options.sign_in
        status = getattr(exc, "status_code", None)
        if isinstance(exc, SignInError):  # before Azure Storage saw a token
            message, hint = describe_failure(sign_in, exc.__cause__ or exc)
            return SourceError(f"{message} ({what} of account {loc.account})", hint=hint)
        if sign_in.auth != KEY and status in (401, 403):
            return SourceError(
                f"Azure refused {sign_in.who} for account {loc.account} ({what}): {_short(exc)}",
                hint="the identity needs a data role on the container, e.g. Storage Blob Data "
                "Reader (and Storage Blob Delegator for a user delegation SAS)",
            )
        if isinstance(exc, ClientAuthenticationError) or status == 403:
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
            await self.connect()
            async for blob in self.container().list_blobs(name_starts_with=self.location.prefix):
                total += blob.size or 0
        except (*FAILURES, SourceError):
            return None
        return total

    def batches(self) -> AsyncGenerator[Sequence[Item], None]:
        return one_per_batch(self.items())

    async def items(self) -> AsyncIterator[Item]:
        await self.connect()
        await self._log_namespace()
        read = ReadLog()
        try:
            async for item in self._listed(read):
                yield item
            await self._check_unchanged(read)
        finally:
            read.close()

    async def _listed(self, read: ReadLog) -> AsyncIterator[Item]:
        """Every item in listing order; each blob's outcome goes into ``read`` in that order."""
        mapper = PathMapper()
        prefix = self.location.prefix
        pages = self._pages()
        batch: list[tuple[BlobProperties, SourceEntry]] = []
        inline_bytes = 0
        pending: BlobItem | None = None
        placeholders = 0
        async for blob in pages:
            name = blob.name[len(prefix) :]
            if _is_directory(blob):
                placeholders += 1
                path = mapper.directory(name)
                if path is not None:
                    batch.append((blob, _dir_entry(path, blob)))
            else:
                path, mapped = mapper.path(name)
                batch.append((blob, entry_for(path, blob, blob.name if mapped else None)))
                if (blob.size or 0) <= INLINE_MAX:
                    inline_bytes += blob.size or 0
            if len(batch) >= BATCH_ITEMS or inline_bytes >= BATCH_BYTES:
                for item, blob_item in await self._resolve(batch):
                    _log(read, pending)
                    pending = blob_item
                    yield item
                batch, inline_bytes = [], 0
        for item, blob_item in await self._resolve(batch):
            _log(read, pending)
            pending = blob_item
            yield item
        _log(read, pending)
        if placeholders:
            log.info("%s: %d directory placeholders copied as directories", self.description,
                     placeholders)  # fmt: skip

    async def _pages(self, what: str = "list") -> AsyncIterator[BlobProperties]:
        """The prefix's blobs with their metadata, retried page by page."""
        pages = (
            self.container()
            .list_blobs(name_starts_with=self.location.prefix, include=["metadata"])
            .by_page()
        )
        while True:
            try:
                page = await self.retrying(f"{what} blobs", lambda: anext(pages))
            except StopAsyncIteration:
                return
            except FAILURES as exc:
                raise self.error(exc, f"{what} container {self.location.container}") from None
            async for blob in page:
                yield blob

    async def _check_unchanged(self, read: ReadLog) -> None:
        """List again and compare with what was read (sources/azure/relist.py)."""
        prefix = self.location.prefix

        async def listing() -> AsyncIterator[tuple[str, str]]:
            async for blob in self._pages("list again"):
                if not _is_directory(blob):
                    yield blob.name[len(prefix) :], blob.etag

        changes = await compare(read, listing())
        if changes.count:
            raise SourceChangedError(
                f"{self.description}: {changes.count} blob"
                f"{' has' if changes.count == 1 else 's have'} changed while the container was "
                f"copied: {changes.describe()}; nothing was published",
                hint="run the same send again: it reads only what changed, then checks again",
            )
        log.info("%s: listed again after reading: all %d blobs unchanged", self.description,
                 read.count)  # fmt: skip

    async def _log_namespace(self) -> None:
        """Say whether the account has a hierarchical namespace (ADLS Gen2): no versions there,
        so the ETags and the second listing are the only proof. Unknown is fine (a SAS
        scoped to the container may not ask)."""
        try:
            info = await self.container().get_account_information()
        except FAILURES:
            return
        hns = info.get("is_hns_enabled")
        log.info("%s: hierarchical namespace (ADLS Gen2): %s", self.description,
                 "yes" if hns else "no" if hns is not None else "unknown")  # fmt: skip

    async def _resolve(
        self, batch: list[tuple[BlobProperties, SourceEntry]]
    ) -> list[tuple[Item, BlobItem | None]]:
        """The batch's items in order, its small blobs read (SMALL_READS at once), each with
        the BlobItem that reads it (None for a directory)."""
        slots = asyncio.Semaphore(SMALL_READS)

        async def one(blob: BlobProperties, entry: SourceEntry) -> tuple[Item, BlobItem | None]:
            if entry.kind == "dir":
                return MetaItem(entry), None
            item = BlobItem(self, blob, entry)
            if (blob.size or 0) > INLINE_MAX:
                return item, item
            async with slots:
                return await item.read_whole(), item

        return list(await asyncio.gather(*(one(b, e) for b, e in batch)))


def _log(read: ReadLog, item: BlobItem | None) -> None:
    if item is not None:
        read.add(item.relative_name, item.read_etag)


def _is_directory(blob: BlobProperties) -> bool:
    metadata = blob.metadata or {}
    return any(
        k.lower() == "hdi_isfolder" and str(v).lower() == "true" for k, v in metadata.items()
    )


def _dir_entry(path: str, blob: BlobProperties) -> SourceEntry:
    mtime = int(blob.last_modified.timestamp()) * 10**9 if blob.last_modified else None
    return SourceEntry(path.encode(), "dir", DIR_MODE, mtime)


def _is_transport(exc: BaseException) -> bool:
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    return isinstance(exc, ServiceRequestError | ServiceResponseError | OSError | TimeoutError)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
