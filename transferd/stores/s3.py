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
  ``conditional_writes = "auto"`` the store is probed before its first write in a process
  (stores/s3probe.py, which records what it found in the store). Where it is not honoured
  (rclone serve s3, older gateways) the driver checks with HEAD, PUTs, and reads the key back: a
  writer that finds another's bytes reports ManifestExistsError, and several agents refuse to
  share such a store. **The race that remains
  is documented, not hidden**: two writers whose HEADs both precede both PUTs, and whose
  read-backs both precede the other's PUT, each believe they stored the manifest. Within one job
  a single sender writes (the job lock); copy records (leases, copy manifests) live with it by
  reading back after a settling delay (copies/leases.py).
- **inventory without downloading**: ``has_objects`` sends HEADs (32 at a time);
  ``list_objects`` pages through ListObjectsV2. Reads take byte ranges.
- **immutable copies**: with a lock policy (``[s3] object_lock_days``, ``--object-lock``),
  objects, manifests and copy manifests are written retained (stores/s3lock.py), after the probe
  has shown that the bucket enforces Object Lock; lease records never are.
- **errors**: see stores/s3errors.py; botocore's own retries are off, RetryingStore retries.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, suppress
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from transferd.core.constants import MANIFEST_SEQUENCE_DIGITS
from transferd.core.manifest import ManifestKey, manifest_name, parse_manifest_name
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
from transferd.stores.s3lock import LockPolicy, Retention, put_retention, read_retention
from transferd.stores.s3probe import ProbeRecord, check_lock, probe

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
        self._probe: ProbeRecord | None = None
        self._in_flight: dict[str, asyncio.Future[None]] = {}
        """Uploads under way, by key: a second put of the same object waits for the first
        instead of racing it (some servers fail concurrent writes of one key)."""
        self.lock: LockPolicy | None = settings.lock
        """Retention set on every object, manifest and copy manifest written (stores/s3lock.py)."""
        self._clock: Any = lambda: datetime.now(UTC)

    # --- keys -----------------------------------------------------------------------------

    def _job_prefix(self, job: str) -> str:
        return f"{self.settings.prefix}jobs/{check_job(job)}/"

    def object_key(self, job: str, name: str) -> str:
        check_object_name(name)
        return f"{self._job_prefix(job)}objects/{name[:2]}/{name}"

    def manifest_key(self, job: str, sequence: int, epoch: int = 0) -> str:
        _sequence(epoch or 1)  # in range, as the sequence is
        return f"{self._job_prefix(job)}manifests/{manifest_name(int(_sequence(sequence)), epoch)}"

    def _series_prefix(self, copy: str, series: str) -> str:
        return f"{self.settings.prefix}copies/{check_copy_name(copy)}/{check_copy_series(series)}/"

    def copy_record_key(self, copy: str, series: str, sequence: int) -> str:
        return self._series_prefix(copy, series) + _sequence(sequence)

    def _locked(self) -> dict[str, Any]:
        """The lock parameters of a write now; none without a lock policy."""
        return {} if self.lock is None else self.lock.headers(self._clock())

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

    async def call(self, what: str, call: Callable[[Any], Awaitable[T]]) -> T:
        client = await self._s3()
        try:
            return await call(client)
        except _ERRORS as exc:
            raise map_error(exc, what, self._endpoint, self.settings.bucket) from exc

    def not_found(self, exc: BaseException) -> bool:
        status, code, _ = status_and_code(exc.__cause__ or exc)
        return code in ("NoSuchKey", "NotFound", "404") or (
            status == 404 and code != "NoSuchBucket"
        )

    # --- objects ------------------------------------------------------------------------------

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        key = self.object_key(job, name)
        if hashlib.sha256(data).hexdigest() != name:
            raise IntegrityError(f"object {name} does not hash to its name")
        what = f"storing object {name} of job {job}"
        await self.probed()
        running = self._in_flight.get(key)
        if running is not None:
            await asyncio.shield(running)
            return
        upload = asyncio.ensure_future(
            self._put_multipart(key, data, what)
            if len(data) > self.settings.multipart_threshold
            else self._put_object(key, data, what)
        )
        self._in_flight[key] = upload
        upload.add_done_callback(lambda _: self._in_flight.pop(key, None))
        await asyncio.shield(upload)

    async def put_plain(self, key: str, data: bytes, what: str, **extra: Any) -> dict[str, Any]:
        """PUT ``data`` at ``key`` with its checksums and ``extra`` parameters; S3's answer."""
        bucket = self.settings.bucket
        answer: dict[str, Any] = await self.call(
            what,
            lambda c: c.put_object(Bucket=bucket, Key=key, Body=data, **_checksums(data), **extra),
        )
        return answer

    async def _put_object(self, key: str, data: bytes, what: str) -> None:
        await self.put_plain(key, data, what, **self._locked())

    async def _put_multipart(self, key: str, data: bytes, what: str) -> None:
        bucket, size = self.settings.bucket, self.settings.part_size
        locked = self._locked()
        started = await self.call(
            what,
            lambda c: c.create_multipart_upload(
                Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256", **locked
            ),
        )
        upload_id = started["UploadId"]
        slots = asyncio.Semaphore(PART_CONCURRENCY)
        view = memoryview(data)

        async def part(number: int) -> dict[str, Any]:
            body = bytes(view[(number - 1) * size : number * size])
            async with slots:
                answer = await self.call(
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
            await self.call(
                what,
                lambda c: c.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                ),
            )
            if locked:
                await self._retain_after_multipart(key, locked, what)
        except BaseException:
            # Best effort: an upload left open costs storage until the bucket's lifecycle rule
            # (AbortIncompleteMultipartUpload) removes it; it never counts as a stored object.
            with suppress(StoreError):
                await asyncio.shield(
                    self.call(
                        what,
                        lambda c: c.abort_multipart_upload(
                            Bucket=bucket, Key=key, UploadId=upload_id
                        ),
                    )
                )
            raise

    async def _retain_after_multipart(self, key: str, locked: dict[str, Any], what: str) -> None:
        """Set the retention CreateMultipartUpload was given and the server dropped (ministack,
        Ceph 16 do): read it back, and put it where it is missing or short."""
        (held,) = await self.retention([key])
        mode, until = locked["ObjectLockMode"], locked["ObjectLockRetainUntilDate"]
        if held.mode == mode and held.until is not None and held.until >= until:
            return
        await self.set_retention(held, mode, until, what)

    async def has_objects(self, job: str, names: Sequence[str]) -> set[str]:
        wanted = [n for n in names if isinstance(n, str) and re.fullmatch(r"[0-9a-f]{64}", n)]
        slots = asyncio.Semaphore(HEAD_CONCURRENCY)

        async def held(name: str) -> str | None:
            async with slots:
                return name if await self._exists(self.object_key(job, name), job) else None

        found = await asyncio.gather(*(held(n) for n in wanted))
        return {n for n in found if n is not None}

    async def _exists(self, key: str, job: str) -> bool:
        bucket = self.settings.bucket
        try:
            await self.call(
                f"asking whether job {job} holds {key.rsplit('/', 1)[-1]}",
                lambda c: c.head_object(Bucket=bucket, Key=key),
            )
        except StoreError as exc:
            if self.not_found(exc):
                return False
            raise
        return True

    async def get_object(
        self, job: str, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        key = self.object_key(job, name)
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
            return await self.call(f"reading {what}", get)
        except StoreError as exc:
            if self.not_found(exc):
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
            page = await self.call(what, lambda c, a=args: c.list_objects_v2(**a))  # type: ignore[misc]
            for item in page.get("Contents", []):
                yield item["Key"][len(prefix) :], int(item["Size"])
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    async def delete_object(self, job: str, name: str) -> None:
        key, bucket = self.object_key(job, name), self.settings.bucket
        await self.call(
            f"deleting object {name} of job {job}",
            lambda c: c.delete_object(Bucket=bucket, Key=key),
        )

    # --- manifests, jobs ----------------------------------------------------------------------

    async def put_manifest(self, job: str, sequence: int, data: bytes, epoch: int = 0) -> None:
        key = self.manifest_key(job, sequence, epoch)
        what = f"manifest {ManifestKey(sequence, epoch)} of job {job}"
        await self._put_exclusive(key, bytes(data), what, locked=True)

    async def get_manifest(self, job: str, sequence: int, epoch: int = 0) -> bytes:
        what = f"manifest {ManifestKey(sequence, epoch)} of job {job}"
        return await self._read(self.manifest_key(job, sequence, epoch), what, None)

    async def list_manifests(self, job: str) -> list[ManifestKey]:
        prefix = f"{self._job_prefix(job)}manifests/"
        names = [k async for k, _ in self._list(prefix, f"listing the manifests of job {job}")]
        return sorted(k for k in map(parse_manifest_name, names) if k is not None)

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
            page = await self.call("listing jobs", lambda c, a=args: c.list_objects_v2(**a))  # type: ignore[misc]
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
        key = self.copy_record_key(copy, series, sequence)
        what = f"record {sequence} of {series} of copy {copy}"
        # Copy manifests are proof and are locked; lease records are pruned and never are.
        await self._put_exclusive(key, bytes(data), what, locked=series == "manifests")

    async def get_copy_record(self, copy: str, series: str, sequence: int) -> bytes:
        key = self._series_prefix(copy, series) + _sequence(sequence)
        return await self._read(key, f"record {sequence} of {series} of copy {copy}", None)

    async def list_copy_records(self, copy: str, series: str) -> list[int]:
        prefix = self._series_prefix(copy, series)
        return await self._sequences(prefix, f"listing {series} of copy {copy}")

    async def delete_copy_record(self, copy: str, series: str, sequence: int) -> None:
        key, bucket = self._series_prefix(copy, series) + _sequence(sequence), self.settings.bucket
        await self.call(
            f"deleting record {sequence} of {series} of copy {copy}",
            lambda c: c.delete_object(Bucket=bucket, Key=key),
        )

    # --- exclusive writes ---------------------------------------------------------------------

    async def _put_exclusive(self, key: str, data: bytes, what: str, *, locked: bool) -> None:
        extra = self._locked() if locked else {}
        if await self.conditional_writes():
            try:
                await self.put_plain(key, data, f"storing {what}", IfNoneMatch="*", **extra)
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
            await self.put_plain(key, data, f"storing {what}", **extra)
            if await self._read(key, what, None) != data:
                raise ManifestExistsError(
                    f"{what} already exists (another writer stored it at the same time)"
                )

    async def conditional_writes(self) -> bool:
        """Whether a PUT with ``If-None-Match: *`` on an existing key is refused: as the
        settings say, else as the probe found."""
        setting = self.settings.conditional_writes
        return setting == "yes" or (setting == "auto" and (await self.probed()).if_none_match)

    async def probed(self) -> ProbeRecord:
        """What this store honours, probed once per process before its first write
        (stores/s3probe.py); with a lock policy, refused unless Object Lock holds."""
        async with self._probe_lock:  # concurrent first writers probe once, not each
            if self._probe is None:
                record = await probe(self, self.lock)
                if self.lock is not None:
                    check_lock(self, record, self.lock)
                self._probe = record
            return self._probe

    # --- retention ----------------------------------------------------------------------------

    async def head_key(self, key: str, what: str) -> dict[str, Any]:
        bucket = self.settings.bucket
        answer: dict[str, Any] = await self.call(
            what, lambda c: c.head_object(Bucket=bucket, Key=key)
        )
        return answer

    async def read_key(self, key: str, what: str) -> bytes:
        """The bytes at ``key``; ObjectNotFoundError when it is not there."""
        return await self._read(key, what, None)

    async def retention(self, keys: Sequence[str]) -> list[Retention]:
        """Each key's current retention, in the keys' order (stores/s3lock.py)."""
        return await read_retention(self, keys, HEAD_CONCURRENCY)

    async def set_retention(self, held: Retention, mode: str, until: datetime, what: str) -> None:
        await put_retention(self, held, mode, until, what)

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
