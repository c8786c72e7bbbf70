"""A store in a POSIX directory: temp file, fsync, rename, fsync of the directory.

The steps are util/durable.py's, except where a store needs its own: temp files in a per-job
``tmp/`` (below), a hash taken as the bytes stream in, and manifests linked rather than renamed.

Layout (protocol/DESIGN-BRIEF.md "Store layout"), under the store's root::

    jobs/<job>/objects/<sha256[0:2]>/<sha256>   packs, object lists, catalog segments
    jobs/<job>/manifests/<sequence, 20 digits>  manifests, never overwritten
    jobs/<job>/tmp/<name>.<random>.tmp          files being written; never read as data
    copies/<copy>/<series>/<sequence, 20 digits> copy records (stores/base.py, clause 7),
                                                written like manifests; temp files in
    copies/<copy>/tmp/

Write order, the invariant this module exists for: the bytes are written to a temp file and
fsynced, the file is renamed (objects) or hard-linked (manifests: ``link`` fails when the target
exists, so a manifest is never replaced) to its final name, and the directory holding that name
is fsynced; only then does the call return. Directories created on the way are fsynced into their
parents. A crash at any instant leaves either nothing or the whole file under the final name; what
it can leave behind is a temp file, which no listing shows and the next open removes.

Temp files live in a per-job ``tmp/`` directory rather than beside the final name so that
cleaning up after a crash reads one directory per job instead of walking millions of objects;
``rename`` between sibling directories of one job is as atomic as within one. A job directory
may be a mount point of its own (the granularity at which an operator adds a disk); a store-wide
temp directory would then make every rename fail with EXDEV.

Modes: files 0640, directories 0750 (before the umask, which may only narrow them). Objects are
ciphertext and manifests are signed public metadata, so letting the store's group read them lets
an auditor's account verify a copy without running as the server's user or being able to alter
it; others get nothing, because job names, object sizes and counts are still metadata worth
hiding. A stricter umask (systemd ``UMask=0077``) is honoured.

Every blocking call runs in a worker thread (``asyncio.to_thread``): the event loop of a storage
host serving many uploads must never wait on a disk.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import re
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from transferd.core.constants import MANIFEST_SEQUENCE_DIGITS
from transferd.core.manifest import ManifestKey, manifest_name, parse_manifest_name
from transferd.errors import (
    IntegrityError,
    ManifestExistsError,
    ObjectNotFoundError,
    PermanentStoreError,
    StoreError,
    StoreFullError,
    TransientStoreError,
)
from transferd.stores.base import check_copy_name, check_copy_series, check_job, check_object_name
from transferd.stores.streamwriter import StreamWriter
from transferd.util.durable import fsync_directory, write_all

FILE_MODE = 0o640
DIR_MODE = 0o750
TEMP_SUFFIX = ".tmp"
TEMP_MAX_AGE = 3600.0
"""Seconds after which a temp file is a crash's leftover. A younger one may be another process
writing to the same directory right now (a ``verify`` opening the store while ``serve`` runs),
so opening a store removes only older ones; a write takes seconds, not an hour."""

STREAM_WRITE = 1 << 20
"""Bytes of an upload gathered before a thread writes and hashes them: 16 hops per pack."""
STREAM_HELD = 4 << 20
"""Bytes of an upload held in memory at most while the disk is busy: past this the body is not
read until the write in progress is done (TCP holds the rest back). Without it a body arriving
faster than the disk writes was held whole, so the storage host's memory grew with the uploads
in flight times their size."""

_OBJECT = re.compile(r"[0-9a-f]{64}")
_SEQUENCE = re.compile(rf"[0-9]{{{MANIFEST_SEQUENCE_DIGITS}}}")
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_TRANSIENT = frozenset({errno.EINTR, errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT})
_MAX_SEQUENCE = 10**MANIFEST_SEQUENCE_DIGITS - 1


class LocalStore:
    """A store rooted at a directory, created (one level) if missing.

    ``read_only=True`` (verify, restore) never writes: the directory must exist, no crash
    leftovers are cleaned, and every write is refused. An auditor's account with read access only
    can then open a store that ``serve`` is writing to.
    """

    def __init__(self, root: str | os.PathLike[str], *, read_only: bool = False) -> None:
        self.root = Path(root).absolute()
        self.description = str(self.root)
        self.read_only = read_only
        self._known_dirs: set[Path] = set()
        self._writing: set[Path] = set()
        """Temp files this store is writing now: never swept, whatever their age."""
        if read_only:
            if not self.root.is_dir():
                raise ObjectNotFoundError(f"there is no store at {self.root}")
            return
        try:
            self.root.mkdir(mode=DIR_MODE, exist_ok=True)
        except FileNotFoundError:
            raise PermanentStoreError(
                f"cannot create the store {self.root}: directory {self.root.parent} does not exist"
            ) from None
        except OSError as exc:
            raise self._error("create the store", self.root, exc) from exc
        if not self.root.is_dir():
            raise PermanentStoreError(f"the store {self.root} is not a directory")
        self._remove_stale_temp_files(time.time())

    # --- paths ----------------------------------------------------------------------------

    def _job_dir(self, job: str) -> Path:
        return self.root / "jobs" / check_job(job)

    def _object_path(self, job: str, name: str) -> Path:
        check_object_name(name)
        return self._job_dir(job) / "objects" / name[:2] / name

    def _manifest_path(self, job: str, sequence: int, epoch: int = 0) -> Path:
        for number in (sequence, epoch or 1):
            if not isinstance(number, int) or not 1 <= number <= _MAX_SEQUENCE:
                raise PermanentStoreError(f"manifest sequence or epoch {number!r} is out of range")
        return self._job_dir(job) / "manifests" / manifest_name(sequence, epoch)

    # --- writes ---------------------------------------------------------------------------

    def _refuse_if_read_only(self, what: str) -> None:
        if self.read_only:
            raise PermanentStoreError(f"cannot {what}: the store {self.root} was opened read-only")

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        self._refuse_if_read_only(f"store object {name}")
        path = self._object_path(job, name)
        await asyncio.to_thread(self._put_object, job, name, path, data)

    def _put_object(self, job: str, name: str, path: Path, data: bytes) -> None:
        if hashlib.sha256(data).hexdigest() != name:
            raise IntegrityError(f"object {name} does not hash to its name")
        if path.exists():  # final names only ever hold complete objects: nothing to do
            return
        temp = self._write_temp(job, name, data)
        try:
            self._make_dirs(path.parent)
            os.rename(temp, path)
            fsync_directory(path.parent)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise self._error(f"store object {name} of job {job}", path, exc) from exc
        finally:
            self._writing.discard(temp)

    async def put_object_stream(
        self, job: str, name: str, parts: AsyncIterator[bytes | bytearray | memoryview]
    ) -> int:
        """``put_object`` for a body that arrives in parts (the storage host's uploads): each
        part is hashed and written to the temp file as it comes, about a MiB per thread hop;
        after the last, the same checks and write order as ``put_object``. Returns the size.

        The host held each 16 MiB upload whole and joined its parts before writing it: a copy
        and a fresh mapping per pack (a sixth of the host's CPU), with the disk idle meanwhile.
        A body that fails (ends early, too large, wrong hash) leaves no file behind.
        """
        self._refuse_if_read_only(f"store object {name}")
        path = self._object_path(job, name)
        # The loop goes on taking parts while a thread opens the file or writes the part before:
        # one write at a time, in order; what arrives meanwhile waits in ``pending``.
        opening = asyncio.ensure_future(asyncio.to_thread(self._open_stream, job, name, path))
        writing: asyncio.Future[None] | None = None
        try:
            pending: list[bytes | bytearray | memoryview] = []
            pending_size = 0
            async for part in parts:
                pending.append(part)
                pending_size += len(part)
                if pending_size >= STREAM_HELD and not opening.done():
                    await asyncio.shield(opening)
                if pending_size >= STREAM_WRITE and opening.done():
                    if writing is not None:
                        if not writing.done() and pending_size < STREAM_HELD:
                            continue
                        await asyncio.shield(writing)  # held enough: wait for the disk
                        writing.result()  # a failed write fails the upload now
                    writer = opening.result()
                    writing = asyncio.ensure_future(asyncio.to_thread(writer.write, pending))
                    pending, pending_size = [], 0
            # shielded: a cancelled upload must not mark as done a thread still running
            writer = await asyncio.shield(opening)
            if writing is not None:
                await asyncio.shield(writing)
            writing = asyncio.ensure_future(asyncio.to_thread(writer.write, pending))
            await asyncio.shield(writing)
            writing = asyncio.ensure_future(
                asyncio.to_thread(self._finish_stream, writer, job, name, path)
            )
            await asyncio.shield(writing)
            return writer.size
        finally:
            # A thread still writing when the file is closed could write into whatever file
            # next gets its descriptor: wait for it, whatever ended the upload.
            running = [t for t in (opening, writing) if t is not None and not t.done()]
            if running:
                await asyncio.wait(running)
            if opening.done() and not opening.cancelled() and opening.exception() is None:
                opening.result().discard()  # closed; removed unless renamed to its name
            if writing is not None and writing.done() and not writing.cancelled():
                writing.exception()  # retrieved: the upload's own error is what is reported

    def _open_stream(self, job: str, name: str, path: Path) -> StreamWriter:
        if path.exists():  # final names only ever hold complete objects: hash, do not write
            return StreamWriter(None, None)
        fd, temp = self._create_temp(job, name, self._job_dir(job) / "tmp")
        return StreamWriter(
            fd,
            temp,
            lambda exc: self._error(f"write to job {job}", temp, exc),
            lambda: self._writing.discard(temp),
        )

    def _finish_stream(self, writer: StreamWriter, job: str, name: str, path: Path) -> None:
        if writer.hasher.hexdigest() != name:
            raise IntegrityError(f"object {name} does not hash to its name")
        if writer.temp is None:
            return
        writer.sync()
        try:
            self._make_dirs(path.parent)
            os.rename(writer.temp, path)
            writer.temp = None  # renamed: nothing to remove
            fsync_directory(path.parent)
        except OSError as exc:
            raise self._error(f"store object {name} of job {job}", path, exc) from exc

    async def put_manifest(self, job: str, sequence: int, data: bytes, epoch: int = 0) -> None:
        key = ManifestKey(sequence, epoch)
        self._refuse_if_read_only(f"store manifest {key}")
        path = self._manifest_path(job, sequence, epoch)
        what = f"manifest {key} of job {job}"
        await asyncio.to_thread(self._put_manifest, job, sequence, path, bytes(data), None, what)

    def _put_manifest(
        self,
        job: str,
        sequence: int,
        path: Path,
        data: bytes,
        tmp_dir: Path | None = None,
        what: str | None = None,
    ) -> None:
        what = what or f"manifest {sequence} of job {job}"
        if path.exists():  # checked first so a refused manifest costs no write
            raise ManifestExistsError(f"{what} already exists")
        temp = self._write_temp(job, path.name, data, tmp_dir)
        try:
            self._make_dirs(path.parent)
            os.link(temp, path)  # fails with EEXIST instead of replacing: never overwritten
            fsync_directory(path.parent)
        except FileExistsError:
            raise ManifestExistsError(f"{what} already exists") from None
        except OSError as exc:
            raise self._error(f"store {what}", path, exc) from exc
        finally:
            temp.unlink(missing_ok=True)
            self._writing.discard(temp)

    def _write_temp(self, job: str, name: str, data: bytes, tmp_dir: Path | None = None) -> Path:
        """A new, fsynced temp file in the job's tmp/ (or ``tmp_dir``) holding ``data``; removed
        on any failure."""
        fd, temp = self._create_temp(job, name, tmp_dir or self._job_dir(job) / "tmp")
        try:
            try:
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            self._writing.discard(temp)
            raise self._error(f"write to job {job}", temp, exc) from exc
        return temp

    def _create_temp(self, job: str, name: str, tmp_dir: Path) -> tuple[int, Path]:
        """A new, empty temp file for object ``name`` in ``tmp_dir``, opened for writing."""
        temp = tmp_dir / f"{name}.{os.urandom(8).hex()}{TEMP_SUFFIX}"
        self._writing.add(temp)  # before it exists: a sweep must never see it unmarked
        try:
            self._make_dirs(tmp_dir)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            self._writing.discard(temp)
            raise self._error(f"write to job {job}", tmp_dir, exc) from exc
        return fd, temp

    def _make_dirs(self, path: Path) -> None:
        """Create ``path`` and missing parents below the root, each fsynced into its parent."""
        if path in self._known_dirs:
            return
        missing: list[Path] = []
        probe = path
        while probe != self.root and not probe.is_dir():
            missing.append(probe)
            probe = probe.parent
        for directory in reversed(missing):
            try:
                directory.mkdir(mode=DIR_MODE)
            except FileExistsError:  # another thread created it; it made it durable too
                continue
            fsync_directory(directory.parent)
        self._known_dirs.add(path)

    async def delete_object(self, job: str, name: str) -> None:
        self._refuse_if_read_only(f"delete object {name}")
        path = self._object_path(job, name)
        await asyncio.to_thread(self._delete, job, name, path)

    def _delete(self, job: str, name: str, path: Path) -> None:
        try:
            path.unlink()
            fsync_directory(path.parent)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._error(f"delete object {name} of job {job}", path, exc) from exc

    # --- reads ----------------------------------------------------------------------------

    async def has_objects(self, job: str, names: Sequence[str]) -> set[str]:
        job_dir = self._job_dir(job)
        wanted = [n for n in names if isinstance(n, str) and _OBJECT.fullmatch(n)]

        def held() -> set[str]:
            return {n for n in wanted if (job_dir / "objects" / n[:2] / n).is_file()}

        return await asyncio.to_thread(held)

    async def get_object(
        self, job: str, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        path = self._object_path(job, name)
        if offset < 0 or (length is not None and length < 0):
            raise PermanentStoreError(f"cannot read object {name}: negative offset or length")
        what = f"object {name} of job {job}"
        return await asyncio.to_thread(self._read, what, path, offset, length)

    async def get_manifest(self, job: str, sequence: int, epoch: int = 0) -> bytes:
        path = self._manifest_path(job, sequence, epoch)
        what = f"manifest {ManifestKey(sequence, epoch)} of job {job}"
        return await asyncio.to_thread(self._read, what, path, 0, None)

    def _read(self, what: str, path: Path, offset: int, length: int | None) -> bytes:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ObjectNotFoundError(f"{what} is not in the store", key=str(path)) from None
        except OSError as exc:
            raise self._error(f"read {what}", path, exc) from exc
        try:
            size = os.fstat(fd).st_size
            end = size if length is None else min(size, offset + length)
            parts: list[bytes] = []
            while offset < end:
                part = os.pread(fd, end - offset, offset)
                if not part:  # the file shrank under us: it was not written by this store
                    raise PermanentStoreError(f"{what} at {path} is shorter than its size")
                parts.append(part)
                offset += len(part)
            return b"".join(parts)
        except OSError as exc:
            raise self._error(f"read {what}", path, exc) from exc
        finally:
            os.close(fd)

    async def list_objects(self, job: str) -> AsyncIterator[tuple[str, int]]:
        """Objects in ascending name order, one shard directory (1/256 of the job) at a time,
        so that a job of millions of objects is never held in memory."""
        objects = self._job_dir(job) / "objects"
        shards = await asyncio.to_thread(_list_dir, objects)
        for shard in sorted(s for s in shards if re.fullmatch(r"[0-9a-f]{2}", s)):
            entries = await asyncio.to_thread(_sized_entries, objects / shard, shard)
            for entry in entries:
                yield entry

    async def list_manifests(self, job: str) -> list[ManifestKey]:
        names = await asyncio.to_thread(_list_dir, self._job_dir(job) / "manifests")
        return sorted(k for k in map(parse_manifest_name, names) if k is not None)

    async def list_jobs(self) -> list[str]:
        names = await asyncio.to_thread(_list_dir, self.root / "jobs")
        jobs: list[str] = []
        for name in sorted(names):
            try:
                jobs.append(check_job(name))
            except PermanentStoreError:  # not a job directory this store made: ignore it
                continue
        return jobs

    # --- copy records (written like manifests, under copies/) --------------------------------

    def _series_dir(self, copy: str, series: str) -> Path:
        return self.root / "copies" / check_copy_name(copy) / check_copy_series(series)

    def _record_path(self, copy: str, series: str, sequence: int) -> Path:
        if not isinstance(sequence, int) or not 1 <= sequence <= _MAX_SEQUENCE:
            raise PermanentStoreError(f"record sequence {sequence!r} is out of range")
        return self._series_dir(copy, series) / manifest_name(sequence)

    async def put_copy_record(self, copy: str, series: str, sequence: int, data: bytes) -> None:
        path = self._record_path(copy, series, sequence)
        tmp_dir = self.root / "copies" / copy / "tmp"
        what = f"record {sequence} of {series} of copy {copy}"
        await asyncio.to_thread(
            self._put_manifest, copy, sequence, path, bytes(data), tmp_dir, what
        )

    async def get_copy_record(self, copy: str, series: str, sequence: int) -> bytes:
        path = self._record_path(copy, series, sequence)
        what = f"record {sequence} of {series} of copy {copy}"
        return await asyncio.to_thread(self._read, what, path, 0, None)

    async def list_copy_records(self, copy: str, series: str) -> list[int]:
        names = await asyncio.to_thread(_list_dir, self._series_dir(copy, series))
        return sorted(int(n) for n in names if _SEQUENCE.fullmatch(n) and int(n) >= 1)

    async def delete_copy_record(self, copy: str, series: str, sequence: int) -> None:
        path = self._record_path(copy, series, sequence)
        await asyncio.to_thread(self._delete, copy, str(sequence), path)

    async def close(self) -> None:
        pass

    # --- housekeeping and errors ----------------------------------------------------------

    async def sweep_partials(self, older_than: float) -> tuple[int, int]:
        """Remove the temp files (partial uploads, crash leftovers) whose last write is more
        than ``older_than`` seconds ago, except those this store is writing; (files, bytes).

        The storage host calls this every few minutes (host/housekeeping.py). Age is judged by
        mtime, which every write moves: a file another process is still writing stays as long as
        it keeps writing, and one this process writes is skipped however long it stalls.
        """
        self._refuse_if_read_only("sweep partial uploads")
        return await asyncio.to_thread(self._remove_stale_temp_files, time.time(), older_than)

    def _remove_stale_temp_files(
        self, now: float, older_than: float = TEMP_MAX_AGE
    ) -> tuple[int, int]:
        tmp_dirs = [self.root / "jobs" / job / "tmp" for job in _list_dir(self.root / "jobs")]
        tmp_dirs += [self.root / "copies" / c / "tmp" for c in _list_dir(self.root / "copies")]
        removed, reclaimed = 0, 0
        for tmp_dir in tmp_dirs:
            for name in _list_dir(tmp_dir):
                path = tmp_dir / name
                if not name.endswith(TEMP_SUFFIX) or path in self._writing:
                    continue
                try:
                    st = path.stat(follow_symlinks=False)
                    if now - st.st_mtime > older_than and path not in self._writing:
                        path.unlink()
                        removed, reclaimed = removed + 1, reclaimed + st.st_size
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise self._error("remove a stale temp file", path, exc) from exc
        return removed, reclaimed

    def _error(self, action: str, path: Path, exc: OSError) -> StoreError:
        """The store error an OSError stands for, naming the store and what was being done."""
        if exc.errno in _FULL:
            return StoreFullError(
                f"the store at {self.root} is out of space: could not {action}",
                hint="free space or grow the file system, then resume the job",
            )
        reason = (exc.strerror or str(exc)).lower()
        if exc.errno in _TRANSIENT:
            return TransientStoreError(f"cannot {action} at {path}: {reason}")
        return PermanentStoreError(f"cannot {action} at {path}: {reason}")


def _list_dir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def _sized_entries(shard_dir: Path, shard: str) -> list[tuple[str, int]]:
    entries: list[tuple[str, int]] = []
    try:
        with os.scandir(shard_dir) as it:
            for entry in it:
                if _OBJECT.fullmatch(entry.name) and entry.name.startswith(shard):
                    try:
                        entries.append((entry.name, entry.stat(follow_symlinks=False).st_size))
                    except FileNotFoundError:  # deleted while listing
                        continue
    except FileNotFoundError:
        return []
    entries.sort()
    return entries
