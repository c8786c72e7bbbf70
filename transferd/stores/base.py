"""The Store contract: what every storage driver promises, and the errors it may raise.

A store keeps, per job, two kinds of things (protocol/SPEC.md "Store layout"):

- **objects** (packs, object-list segments, catalog segments), named by the lowercase hex SHA-256
  of their bytes, immutable once written;
- **manifests**, numbered by sequence, never overwritten.

Contract, for every driver (tests/stores/ runs one suite against each):

1. ``put_object`` returns only once the object is durable (local disk: temp file, fsync, rename,
   fsync of the directory; S3: the store confirmed the PUT). A crash at any instant leaves either
   no object or the whole object under its name, never a partial one that counts as stored.
   The driver checks that the bytes hash to the name (``IntegrityError`` otherwise) so a corrupt
   upload can never be stored under a valid name. Putting an object that exists is a no-op.
2. ``put_manifest`` is exclusive: a sequence already present raises ``ManifestExistsError``, so a
   manifest is never replaced (rollback protection starts at the store).
3. ``has_objects`` answers for a batch of names which ones are present (the resume inventory).
4. Reads of a missing object or manifest raise ``ObjectNotFoundError``; a job with nothing
   stored raises it too (the store holds no "job created" state).
5. Every method may raise ``TransientStoreError`` (worth retrying: timeouts, resets, 5xx) or
   ``PermanentStoreError`` (not worth retrying: refused, unauthorized), and ``StoreFullError`` when
   the storage is out of space. Retries live in one wrapper, never inside drivers.
6. Methods are idempotent: a retried call after a timeout is safe.

Copy records (``CopyStore``, an extension a driver may add; every driver in this package has
it). A copy is many jobs run by many agents into one store (copies/); what they share lives in
*copy records*: small byte strings numbered per (copy, series), the series being ``manifests``
(the signed copy manifests) or ``leases/<job>`` (who runs a job now). Layout:
``copies/<copy>/<series>/<sequence, 20 digits>``, beside ``jobs/``, never inside a job.

7. ``put_copy_record`` is exclusive like ``put_manifest`` (``ManifestExistsError`` when the
   sequence is taken); ``list_copy_records`` gives the sequences present, ascending (empty for a
   copy or series with none); ``get_copy_record`` of a missing one raises
   ``ObjectNotFoundError``; ``delete_copy_record`` removes one, and deleting a missing one is fine.
   Copy records are not jobs: ``list_jobs`` never shows them, ``list_objects`` never lists them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from transferd.core.constants import JOB_NAME_PATTERN
from transferd.core.manifest import check_job_name
from transferd.errors import FormatError, IntegrityError, PermanentStoreError

_OBJECT_NAME = re.compile(r"[0-9a-f]{64}")
_COPY_SERIES = re.compile(rf"manifests|leases/{JOB_NAME_PATTERN}")

HAVE_BATCH = 1000
"""Names per inventory request: bounds one request's size (64 KiB of names) and answer."""


def check_object_name(name: str) -> str:
    if not isinstance(name, str) or not _OBJECT_NAME.fullmatch(name):
        raise IntegrityError(f"object name {name!r} is not a lowercase hex SHA-256")
    return name


def check_job(job: str) -> str:
    try:
        return check_job_name(job)
    except FormatError as e:  # a bad name is a refusal at this boundary, not a parse error
        raise PermanentStoreError(str(e)) from None


def check_copy_name(copy: str) -> str:
    """Copy names follow the job-name grammar (the same characters are safe in keys and paths)."""
    try:
        return check_job_name(copy)
    except FormatError as e:
        raise PermanentStoreError(str(e).replace("job name", "copy name")) from None


def check_copy_series(series: str) -> str:
    if not isinstance(series, str) or not _COPY_SERIES.fullmatch(series):
        raise PermanentStoreError(f"copy record series {series!r} is not manifests or leases/JOB")
    return series


@runtime_checkable
class Store(Protocol):
    """A place that holds jobs' objects and manifests; the module docstring is the contract."""

    description: str
    """Where this store is, for messages (a path or a URL, never a credential)."""

    async def put_object(self, job: str, name: str, data: bytes) -> None: ...

    async def has_objects(self, job: str, names: Sequence[str]) -> set[str]: ...

    async def get_object(
        self, job: str, name: str, offset: int = 0, length: int | None = None
    ) -> bytes: ...

    def list_objects(self, job: str) -> AsyncIterator[tuple[str, int]]:
        """Every (name, size) stored for the job, in no particular order."""
        ...

    async def delete_object(self, job: str, name: str) -> None: ...

    async def put_manifest(self, job: str, sequence: int, data: bytes) -> None: ...

    async def get_manifest(self, job: str, sequence: int) -> bytes: ...

    async def list_manifests(self, job: str) -> list[int]:
        """Sequences present for the job, ascending; empty when none."""
        ...

    async def list_jobs(self) -> list[str]: ...

    async def close(self) -> None: ...


@runtime_checkable
class CopyStore(Store, Protocol):
    """A Store that also keeps copy records (clause 7 of the module docstring)."""

    async def put_copy_record(self, copy: str, series: str, sequence: int, data: bytes) -> None: ...

    async def get_copy_record(self, copy: str, series: str, sequence: int) -> bytes: ...

    async def list_copy_records(self, copy: str, series: str) -> list[int]: ...

    async def delete_copy_record(self, copy: str, series: str, sequence: int) -> None: ...
