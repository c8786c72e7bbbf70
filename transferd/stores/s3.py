"""A store in an S3-compatible bucket (aiobotocore): the Store contract on objects and keys.

Layout under ``s3://BUCKET/PREFIX`` (protocol/DESIGN-BRIEF.md "Store layout")::

    PREFIX/jobs/<job>/objects/<sha256[0:2]>/<sha256>
    PREFIX/jobs/<job>/manifests/<sequence, 20 digits>
    PREFIX/copies/<copy>/<series>/<sequence, 20 digits>      copy records (stores/base.py, 7)

How each clause of the contract is kept:

- **acknowledged once durable**: a call returns only after S3 answered 200 to the PUT (or to
  CompleteMultipartUpload), which S3 sends once the object is stored redundantly. Nothing is
  acknowledged from a local buffer.
- **names verified**: the body's SHA-256 is checked against the name before sending, and the
  request carries ``Content-MD5`` (checked by every S3 implementation; rclone's too) and
  ``x-amz-checksum-sha256`` (checked by AWS and recent Ceph, MinIO; ignored elsewhere), so a body
  altered on the way is refused by the server and sent again (BadDigest is transient). Objects
  above ``multipart_threshold`` go in parts, each with its own MD5 and SHA-256, uploaded a few at
  a time; a failed upload is aborted so no part lingers.
- **exclusive manifests**: with ``If-None-Match: *`` (AWS since 2024, Ceph, MinIO) the server
  refuses a second writer atomically. Whether the server honours it is not assumed: with
  ``conditional_writes = "auto"`` the first exclusive put probes it once (two conditional PUTs of
  one scratch key; a server that ignores the header lets the second through). Where it is not
  honoured (rclone serve s3, older gateways) the driver checks with HEAD, PUTs, and reads the key
  back: a writer that finds another's bytes reports ManifestExistsError. **The race that remains
  is documented, not hidden**: two writers whose HEADs both precede both PUTs, and whose
  read-backs both precede the other's PUT, each believe they stored the manifest. Within one job
  a single sender writes (the job lock); copy records (leases, copy manifests) live with it by
  reading back after a settling delay (copies/leases.py).
- **inventory without downloading**: ``has_objects`` sends HEADs (32 at a time);
  ``list_objects`` pages through ListObjectsV2. Reads take byte ranges.
- **errors**: see stores/s3errors.py; botocore's own retries are off, RetryingStore retries.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, suppress
from typing import Any, TypeVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from transferd.core.constants import MANIFEST_SEQUENCE_DIGITS
from transferd.errors import (
    IntegrityError,
    ManifestExistsError,
    ObjectNotFoundError,
    PermanentStoreError,
    StoreError,
    TransientStoreError,
)
from transferd.stores.base import check_copy_name, check_copy_series, check_job, check_object_name
from transferd.stores.s3config import S3Settings
from transferd.stores.s3errors import map_error, status_and_code

T = TypeVar("T")

HEAD_CONCURRENCY = 32
"""HEADs in flight for one ``has_objects`` batch: a round trip each, so they overlap."""
PART_CONCURRENCY = 4
"""Parts of one multipart upload in flight: as many as the pipeline's default uploads."""
CONNECT_TIMEOUT = 10.0
_OBJECT = re.compile(r"([0-9a-f]{2})/([0-9a-f]{64})")
_SEQUENCE = re.compile(rf"[0-9]{{{MANIFEST_SEQUENCE_DIGITS}}}")
_MAX_SEQUENCE = 10**MANIFEST_SEQUENCE_DIGITS - 1
_ERRORS = (BotoCoreError, ClientError, aiohttp.ClientError, OSError, asyncio.TimeoutError)


class S3Store:
    """A Store (and CopyStore) in one bucket under one key prefix."""

    def __init__(self, settings: S3Settings, *, list_page: int = 1000) -> None:
        self.settings = settings
        self.list_page = list_page
        self.description = settings.description
        self._endpoint = settings.endpoint or f"AWS S3 {settings.region}"
        self._client: Any = None
        self._stack = AsyncExitStack()
        self._lock = asyncio.Lock()
        self._key_locks: dict[str, asyncio.Lock] = {}
        """One per manifest or record key written: a few per job, kept for the store's life."""
        self._probe_lock = asyncio.Lock()
        self._in_flight: dict[str, asyncio.Future[None]] = {}
        """Uploads under way, by key: a second put of the same object waits for the first
        instead of racing it (some servers fail concurrent writes of one key)."""
        self._conditional: bool | None = {"yes": True, "no": False}.get(settings.conditional_writes)

    # --- keys -----------------------------------------------------------------------------

    def _job_prefix(self, job: str) -> str:
        return f"{self.settings.prefix}jobs/{check_job(job)}/"

    def _object_key(self, job: str, name: str) -> str:
        check_object_name(name)
        return f"{self._job_prefix(job)}objects/{name[:2]}/{name}"

    def _manifest_key(self, job: str, sequence: int) -> str:
        return f"{self._job_prefix(job)}manifests/{_sequence(sequence)}"

    def _series_prefix(self, copy: str, series: str) -> str:
        return f"{self.settings.prefix}copies/{check_copy_name(copy)}/{check_copy_series(series)}/"

    # --- plumbing -------------------------------------------------------------------------

    async def _s3(self) -> Any:
        async with self._lock:
            if self._client is None:
                s = self.settings
                config = AioConfig(
                    s3={"addressing_style": s.addressing},
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=CONNECT_TIMEOUT,
                    read_timeout=s.read_timeout,
                    # Checksums are sent explicitly (below); botocore's default trailers use
                    # aws-chunked encoding, which many S3-compatible servers refuse.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    max_pool_connections=HEAD_CONCURRENCY,
                )
                self._client = await self._stack.enter_async_context(
                    botocore_session().create_client(
                        "s3",
                        endpoint_url=s.endpoint,
                        region_name=s.region,
                        aws_access_key_id=s.access_key,
                        aws_secret_access_key=s.secret_key,
                        aws_session_token=s.session_token,
                        config=config,
                    )
                )
            return self._client

    async def _call(self, what: str, call: Callable[[Any], Awaitable[T]]) -> T:
        client = await self._s3()
        try:
            return await call(client)
        except _ERRORS as exc:
            raise map_error(exc, what, self._endpoint, self.settings.bucket) from exc

    def _not_found(self, exc: BaseException) -> bool:
        status, code, _ = status_and_code(exc.__cause__ or exc)
        return code in ("NoSuchKey", "NotFound", "404") or (
            status == 404 and code != "NoSuchBucket"
        )

    # --- objects ------------------------------------------------------------------------------

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        key = self._object_key(job, name)
        if hashlib.sha256(data).hexdigest() != name:
            raise IntegrityError(f"object {name} does not hash to its name")
        what = f"storing object {name} of job {job}"
        running = self._in_flight.get(key)
        if running is not None:
            await asyncio.shield(running)
            return
        upload = asyncio.ensure_future(
            self._put_multipart(key, data, what)
            if len(data) > self.settings.multipart_threshold
            else self._put(key, data, what)
        )
        self._in_flight[key] = upload
        upload.add_done_callback(lambda _: self._in_flight.pop(key, None))
        await asyncio.shield(upload)

    async def _put(self, key: str, data: bytes, what: str, **extra: Any) -> None:
        bucket = self.settings.bucket
        await self._call(
            what,
            lambda c: c.put_object(Bucket=bucket, Key=key, Body=data, **_checksums(data), **extra),
        )

    async def _put_multipart(self, key: str, data: bytes, what: str) -> None:
        bucket, size = self.settings.bucket, self.settings.part_size
        started = await self._call(
            what,
            lambda c: c.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256"),
        )
        upload_id = started["UploadId"]
        slots = asyncio.Semaphore(PART_CONCURRENCY)
        view = memoryview(data)

        async def part(number: int) -> dict[str, Any]:
            body = bytes(view[(number - 1) * size : number * size])
            async with slots:
                answer = await self._call(
                    f"{what} (part {number})",
                    lambda c: c.upload_part(
                        Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body,
                        **_checksums(body),
                    ),
                )  # fmt: skip
            sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
            return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": sha}

        try:
            parts = await asyncio.gather(*(part(n) for n in range(1, -(-len(data) // size) + 1)))
            await self._call(
                what,
                lambda c: c.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                ),
            )
        except BaseException:
            # Best effort: an upload left open costs storage until the bucket's lifecycle rule
            # (AbortIncompleteMultipartUpload) removes it; it never counts as a stored object.
            with suppress(StoreError):
                await asyncio.shield(
                    self._call(
                        what,
                        lambda c: c.abort_multipart_upload(
                            Bucket=bucket, Key=key, UploadId=upload_id
                        ),
                    )
                )
            raise

    async def has_objects(self, job: str, names: Sequence[str]) -> set[str]:
        wanted = [n for n in names if isinstance(n, str) and re.fullmatch(r"[0-9a-f]{64}", n)]
        slots = asyncio.Semaphore(HEAD_CONCURRENCY)

        async def held(name: str) -> str | None:
            async with slots:
                return name if await self._exists(self._object_key(job, name), job) else None

        found = await asyncio.gather(*(held(n) for n in wanted))
        return {n for n in found if n is not None}

    async def _exists(self, key: str, job: str) -> bool:
        bucket = self.settings.bucket
        try:
            await self._call(
                f"asking whether job {job} holds {key.rsplit('/', 1)[-1]}",
                lambda c: c.head_object(Bucket=bucket, Key=key),
            )
        except StoreError as exc:
            if self._not_found(exc):
                return False
            raise
        return True

    async def get_object(
        self, job: str, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        key = self._object_key(job, name)
        if offset < 0 or (length is not None and length < 0):
            raise PermanentStoreError(f"cannot read object {name}: negative offset or length")
        what = f"object {name} of job {job}"
        if length == 0:
            if not await self._exists(key, job):
                raise ObjectNotFoundError(f"{what} is not in the store")
            return b""
        end = "" if length is None else str(offset + length - 1)
        span = None if offset == 0 and length is None else f"bytes={offset}-{end}"
        return await self._read(key, what, span)

    async def _read(self, key: str, what: str, span: str | None) -> bytes:
        bucket = self.settings.bucket
        extra = {} if span is None else {"Range": span}

        async def get(c: Any) -> bytes:
            answer = await c.get_object(Bucket=bucket, Key=key, **extra)
            async with answer["Body"] as body:
                data: bytes = await body.read()
            expected = answer.get("ContentLength")
            if expected is not None and len(data) != expected:
                raise TransientStoreError(f"reading {what}: {len(data)} of {expected} bytes came")
            return data

        try:
            return await self._call(f"reading {what}", get)
        except StoreError as exc:
            if self._not_found(exc):
                raise ObjectNotFoundError(f"{what} is not in the store") from None
            if status_and_code(exc.__cause__ or exc)[1] == "InvalidRange":
                return b""  # the object exists; the range starts at or past its end
            raise

    async def list_objects(self, job: str) -> AsyncIterator[tuple[str, int]]:
        prefix = f"{self._job_prefix(job)}objects/"
        async for key, size in self._list(prefix, f"listing the objects of job {job}"):
            m = _OBJECT.fullmatch(key)
            if m is not None and m.group(2).startswith(m.group(1)):
                yield m.group(2), size

    async def _list(self, prefix: str, what: str) -> AsyncIterator[tuple[str, int]]:
        """(key below ``prefix``, size) of every key, one ListObjectsV2 page at a time."""
        bucket, token = self.settings.bucket, None
        while True:
            args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": self.list_page}
            if token:
                args["ContinuationToken"] = token
            page = await self._call(what, lambda c, a=args: c.list_objects_v2(**a))  # type: ignore[misc]
            for item in page.get("Contents", []):
                yield item["Key"][len(prefix) :], int(item["Size"])
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    async def delete_object(self, job: str, name: str) -> None:
        key, bucket = self._object_key(job, name), self.settings.bucket
        await self._call(
            f"deleting object {name} of job {job}",
            lambda c: c.delete_object(Bucket=bucket, Key=key),
        )

    # --- manifests, jobs ----------------------------------------------------------------------

    async def put_manifest(self, job: str, sequence: int, data: bytes) -> None:
        key = self._manifest_key(job, sequence)
        await self._put_exclusive(key, bytes(data), f"manifest {sequence} of job {job}")

    async def get_manifest(self, job: str, sequence: int) -> bytes:
        what = f"manifest {sequence} of job {job}"
        return await self._read(self._manifest_key(job, sequence), what, None)

    async def list_manifests(self, job: str) -> list[int]:
        prefix = f"{self._job_prefix(job)}manifests/"
        return await self._sequences(prefix, f"listing the manifests of job {job}")

    async def _sequences(self, prefix: str, what: str) -> list[int]:
        found = [int(k) async for k, _ in self._list(prefix, what) if _SEQUENCE.fullmatch(k)]
        return sorted(n for n in found if n >= 1)

    async def list_jobs(self) -> list[str]:
        bucket, prefix = self.settings.bucket, f"{self.settings.prefix}jobs/"
        jobs: list[str] = []
        token = None
        while True:
            args: dict[str, Any] = {
                "Bucket": bucket, "Prefix": prefix, "Delimiter": "/", "MaxKeys": self.list_page
            }  # fmt: skip
            if token:
                args["ContinuationToken"] = token
            page = await self._call("listing jobs", lambda c, a=args: c.list_objects_v2(**a))  # type: ignore[misc]
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(prefix) :].rstrip("/")
                try:
                    jobs.append(check_job(name))
                except PermanentStoreError:  # not a job this store wrote: ignore it
                    continue
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return sorted(jobs)

    # --- copy records -------------------------------------------------------------------------

    async def put_copy_record(self, copy: str, series: str, sequence: int, data: bytes) -> None:
        key = self._series_prefix(copy, series) + _sequence(sequence)
        await self._put_exclusive(key, bytes(data), f"record {sequence} of {series} of copy {copy}")

    async def get_copy_record(self, copy: str, series: str, sequence: int) -> bytes:
        key = self._series_prefix(copy, series) + _sequence(sequence)
        return await self._read(key, f"record {sequence} of {series} of copy {copy}", None)

    async def list_copy_records(self, copy: str, series: str) -> list[int]:
        prefix = self._series_prefix(copy, series)
        return await self._sequences(prefix, f"listing {series} of copy {copy}")

    async def delete_copy_record(self, copy: str, series: str, sequence: int) -> None:
        key, bucket = self._series_prefix(copy, series) + _sequence(sequence), self.settings.bucket
        await self._call(
            f"deleting record {sequence} of {series} of copy {copy}",
            lambda c: c.delete_object(Bucket=bucket, Key=key),
        )

    # --- exclusive writes ---------------------------------------------------------------------

    async def _put_exclusive(self, key: str, data: bytes, what: str) -> None:
        if await self.conditional_writes():
            try:
                await self._put(key, data, f"storing {what}", IfNoneMatch="*")
            except StoreError as exc:
                status, code, _ = status_and_code(exc.__cause__ or exc)
                if status == 412 or code == "PreconditionFailed":
                    raise ManifestExistsError(f"{what} already exists") from None
                raise
            return
        # HEAD, PUT, read back: see the module docstring for the race this leaves between
        # processes. Within this process, writers of one key take turns.
        async with self._key_locks.setdefault(key, asyncio.Lock()):
            if await self._exists(key, what):
                raise ManifestExistsError(f"{what} already exists")
            await self._put(key, data, f"storing {what}")
            if await self._read(key, what, None) != data:
                raise ManifestExistsError(
                    f"{what} already exists (another writer stored it at the same time)"
                )

    async def conditional_writes(self) -> bool:
        """Whether the server refuses a PUT with ``If-None-Match: *`` on an existing key."""
        async with self._probe_lock:  # concurrent first writers probe once, not each
            return await self._probe_conditional_writes()

    async def _probe_conditional_writes(self) -> bool:
        if self._conditional is None:
            key = f"{self.settings.prefix}.transferd-probe/{os.urandom(16).hex()}"
            what = "probing conditional writes"
            try:
                await self._put(key, b"", what, IfNoneMatch="*")
                await self._put(key, b"", what, IfNoneMatch="*")
                self._conditional = False  # the second went through: the header is ignored
            except StoreError as exc:
                status, code, _ = status_and_code(exc.__cause__ or exc)
                if status == 412 or code == "PreconditionFailed":
                    self._conditional = True
                elif status == 501 or code == "NotImplemented":
                    self._conditional = False
                else:
                    raise
            finally:
                bucket = self.settings.bucket
                await self._call(
                    "removing the probe", lambda c: c.delete_object(Bucket=bucket, Key=key)
                )
        return self._conditional

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()


_session: Any = None


def botocore_session() -> Any:
    """One botocore session per process: each new one parses the S3 service model again
    (about half a second), and a session holds no connection or event loop of its own."""
    global _session
    if _session is None:
        _session = get_session()
    return _session


def _sequence(sequence: int) -> str:
    if not isinstance(sequence, int) or not 1 <= sequence <= _MAX_SEQUENCE:
        raise PermanentStoreError(f"sequence {sequence!r} is out of range")
    return f"{sequence:0{MANIFEST_SEQUENCE_DIGITS}d}"


def _checksums(data: bytes) -> dict[str, str]:
    """Content-MD5 (verified by every S3 server) and the SHA-256 checksum (where supported).
    MD5 here is S3's transfer check, not a security function: the name is the SHA-256."""
    md5 = hashlib.md5(data, usedforsecurity=False).digest()
    return {
        "ContentMD5": base64.b64encode(md5).decode(),
        "ChecksumSHA256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
    }
