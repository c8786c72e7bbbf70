"""Write a restored tree under a target directory, and never anywhere else.

The catalog is trusted only as far as ``catalog.safe_path`` (no absolute path, no ``..``, no empty
part); what it cannot rule out is a path that passes *through* an entry the catalog itself
created: a symlink ``a`` → ``/etc``, then a file ``a/passwd``. So nothing here resolves a path by
name from the root. Every directory is opened component by component relative to its parent's
file descriptor with ``O_NOFOLLOW | O_DIRECTORY``, and every file is created relative to its
directory's descriptor with ``O_CREAT | O_EXCL | O_NOFOLLOW``: a symlink anywhere on the way makes
the open fail, and the restore stops with a format error naming the path.

A regular file is written to a temporary name in its final directory, sized, given its mode and
mtime, fsynced, and only then renamed to its name, so a failure at any point (a damaged chunk, a
full disk, a crash) never leaves a partial file under the final name. Blocks (``HOLE_BLOCK``)
that are all zeros are not written: the file is sized with ``ftruncate``, so their ranges stay
holes and a sparse file stays sparse. Finishing a file (fsync, rename) runs on a few threads of
its own, so the fsyncs of many small files overlap instead of adding up.

Directories are created 0700, whatever the catalog says, so nothing being restored is readable by
others before it is complete; their modes and mtimes are set last, deepest first (writing into a
directory changes its mtime, and a read-only directory could not be filled). Set-user-ID and
set-group-ID bits are dropped: the restoring user owns every file written, and a catalog should
not be able to hand that user set-id programs.

All methods block: the async restore calls them through ``asyncio.to_thread``, one at a time
(``holds`` excepted: it touches only the root's descriptor, and runs on the event loop).

Resuming (``restore --resume``): a file an earlier restore finished is under its name with the
catalog's mode and mtime, since it was renamed there only once complete and verified. ``holds``
finds such a file (by ``lstat`` through descriptors, never following a link), so the reader need
not fetch it; ``check_held`` then proves it by its size and BLAKE3 against the catalog's end
record, and a file that fails is restored again. ``remove_leftovers`` deletes the temporary files
of a run that was killed before it could.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import blake3

from transferd.core.catalog_walk import Entry, show
from transferd.errors import ConfigError, FormatError, TargetError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
HOLE_BLOCK = 64 * 1024
"""Blocks of this size, aligned in the file, that are all zeros are not written but left holes:
small enough to keep a sparse file's holes (filesystems allocate 4 KiB at a time), large enough
that checking a chunk costs a few comparisons per MiB (one, for a block that is not zero)."""
_ZEROS = bytes(HOLE_BLOCK)
_MODE_MASK = 0o1777
"""Permission bits and sticky bit; set-user-ID and set-group-ID are dropped (module docstring)."""
DEFAULT_FILE_MODE = 0o600
"""A stream without a mode (a table) is readable by its owner only: it is health data."""
DIR_FDS = 64
"""Directory descriptors kept open: consecutive entries share their directory."""
FINISHERS = 16
"""Groups of files being fsynced and renamed at once. An fsync waits on the disk, not the CPU, and
concurrent ones share journal commits: on ext4, 10,000 small files take 5.5 s to fsync from 4
threads and 2.3 s from 16."""
FINISH_GROUP = 8
"""Small files per finisher task: one thread wake-up per 8 files, still 16 fsyncs in flight."""
FINISH_ALONE = 1024 * 1024
"""Files of at least this size are handed to a finisher alone, without waiting for a group."""


def check_target(out: Path, force: bool) -> None:
    """Refuse a target that is not a directory, or holds anything, unless ``force``."""
    try:
        names = os.listdir(out)
    except FileNotFoundError:
        if not out.parent.is_dir():
            parent = out.parent
            raise ConfigError(f"cannot create {out}: directory {parent} does not exist") from None
        return
    except NotADirectoryError:
        raise ConfigError(f"{out} exists and is not a directory") from None
    except OSError as e:
        raise ConfigError(f"cannot read {out}: {(e.strerror or str(e)).lower()}") from None
    if names and not force:
        raise ConfigError(
            f"{out} is not empty; refusing to restore into it",
            hint="give an empty or new directory, or --force to write over what is there",
        )


@dataclass
class OpenFile:
    """A file being restored: its temporary name and descriptor in its directory."""

    entry: Entry
    dir_fd: int
    name: bytes
    temp: bytes
    fd: int
    holes: int = 0


@dataclass
class _Dir:
    path: bytes
    mode: int | None = None
    mtime_ns: int | None = None


@dataclass
class TargetCounters:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes_written: int = 0
    bytes_holes: int = 0
    """Bytes of all-zero chunks left as holes instead of written."""
    files_kept: int = 0
    """Files an earlier, interrupted restore finished, proven by size and BLAKE3 (--resume)."""
    bytes_kept: int = 0


@dataclass
class Target:
    root: Path
    force: bool = False
    fsync: bool = True
    counters: TargetCounters = field(default_factory=TargetCounters)

    def __post_init__(self) -> None:
        try:
            os.mkdir(self.root, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise _target_error("create", self.root.as_posix().encode(), e) from None
        self._root_fd = os.open(self.root, _DIR_FLAGS & ~os.O_NOFOLLOW)
        self._fds: OrderedDict[bytes, int] = OrderedDict()
        self._dirs: list[_Dir] = [_Dir(b"")]
        self._pool = ThreadPoolExecutor(FINISHERS, thread_name_prefix="finish")
        self._finishing: deque[Future[None]] = deque()
        self._ready: list[tuple[OpenFile, int]] = []
        self._open: OpenFile | None = None

    # --- entries -------------------------------------------------------------------------------

    def directory(self, entry: Entry) -> None:
        self._dir_fd(entry.path)
        self._dirs.append(_Dir(entry.path, entry.mode, entry.mtime_ns))
        self.counters.dirs += 1

    def symlink(self, entry: Entry) -> None:
        assert entry.target is not None  # noqa: S101 - entries.head_entry guarantees it
        dir_fd, name = self._parent(entry.path)
        try:
            try:
                os.symlink(entry.target, name, dir_fd=dir_fd)
            except FileExistsError:
                if not self.force:
                    raise
                self._remove_non_dir(dir_fd, name, entry.path)
                os.symlink(entry.target, name, dir_fd=dir_fd)
            if entry.mtime_ns is not None:
                times = (entry.mtime_ns, entry.mtime_ns)
                os.utime(name, ns=times, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as e:
            raise _target_error("create symlink", entry.path, e) from None
        self.counters.symlinks += 1

    def open_file(self, entry: Entry) -> OpenFile:
        dir_fd, name = self._parent(entry.path)
        for _ in range(8):
            temp = b".transferd-" + secrets.token_hex(8).encode() + b".tmp"
            try:
                fd = os.open(temp, _NEW_FILE_FLAGS, 0o600, dir_fd=dir_fd)
                break
            except FileExistsError:
                continue
            except OSError as e:
                raise _target_error("create", entry.path, e) from None
        else:  # pragma: no cover - 8 collisions of 64 random bits
            raise TargetError(f"cannot create a temporary file for {show(entry.path)}")
        self._open = OpenFile(entry, os.dup(dir_fd), name, temp, fd)
        return self._open

    def write(self, f: OpenFile, offset: int, data: bytes) -> None:
        """Write one chunk at ``offset``, leaving its all-zero blocks as holes."""
        view = memoryview(data)
        size = len(view)
        pos = 0
        run = -1  # start of the run of non-zero blocks not yet written, or -1
        while pos < size:
            end = min(size, pos + HOLE_BLOCK - (offset + pos) % HOLE_BLOCK)
            if _ZEROS.startswith(view[pos:end]):
                if run >= 0:
                    self._pwrite(f, view[run:pos], offset + run)
                    run = -1
                f.holes += end - pos
                self.counters.bytes_holes += end - pos
            elif run < 0:
                run = pos
            pos = end
        if run >= 0:
            self._pwrite(f, view[run:], offset + run)

    def _pwrite(self, f: OpenFile, view: memoryview, offset: int) -> None:
        self.counters.bytes_written += len(view)
        try:
            while view:
                n = os.pwrite(f.fd, view, offset)
                view, offset = view[n:], offset + n
        except OSError as e:
            raise _target_error("write", f.entry.path, e) from None

    def finish_file(self, f: OpenFile, size: int) -> None:
        """Hand the file to a finisher: size, mode, mtime, fsync, rename to its name.

        Small files are handed over in groups (``FINISH_GROUP``): one thread wake-up per group
        instead of per file; a large file goes at once, so its fsync overlaps what follows.
        """
        self._open = None
        self._ready.append((f, size))
        self.counters.files += 1
        if len(self._ready) >= FINISH_GROUP or size >= FINISH_ALONE:
            self._hand_over()

    def _hand_over(self) -> None:
        if self._ready:
            self._check_finishers(FINISHERS)
            group, self._ready = self._ready, []
            self._finishing.append(self._pool.submit(self._finish_group, group))

    def _finish_group(self, group: list[tuple[OpenFile, int]]) -> None:
        first: TargetError | None = None
        for f, size in group:
            try:
                self._finish(f, size)
            except TargetError as e:  # finish the others: they are complete and verified
                first = first or e
        if first is not None:
            raise first

    def abort_file(self, f: OpenFile) -> None:
        """Remove a file that will not be finished (its content failed a check)."""
        self._open = None
        os.close(f.fd)
        with contextlib.suppress(OSError):  # best effort: the error that got us here is reported
            os.unlink(f.temp, dir_fd=f.dir_fd)
        os.close(f.dir_fd)

    def _finish(self, f: OpenFile, size: int) -> None:
        e = f.entry
        try:
            try:
                os.ftruncate(f.fd, size)
                os.fchmod(f.fd, _file_mode(e) & _MODE_MASK)
                if e.mtime_ns is not None:
                    os.utime(f.fd, ns=(e.mtime_ns, e.mtime_ns))
                if self.fsync:
                    os.fsync(f.fd)
            finally:
                os.close(f.fd)
            os.rename(f.temp, f.name, src_dir_fd=f.dir_fd, dst_dir_fd=f.dir_fd)
        except OSError as err:
            with contextlib.suppress(OSError):
                os.unlink(f.temp, dir_fd=f.dir_fd)
            raise _target_error("write", e.path, err) from None
        finally:
            os.close(f.dir_fd)

    def _check_finishers(self, keep: int) -> None:
        while self._finishing and (self._finishing[0].done() or len(self._finishing) >= keep):
            self._finishing.popleft().result()

    # --- resuming ------------------------------------------------------------------------------

    def holds(self, entry: Entry) -> bool:
        """Whether a regular file with the entry's mtime and mode is under its name already."""
        st = self._lstat(entry.path)
        return (
            st is not None
            and stat.S_ISREG(st.st_mode)
            and entry.mtime_ns is not None
            and st.st_mtime_ns == entry.mtime_ns
            and stat.S_IMODE(st.st_mode) == (_file_mode(entry) & _MODE_MASK)
        )

    def check_held(self, entry: Entry, size: int, digest: str) -> bool:
        """Whether the file under the entry's name has the catalog's size and BLAKE3."""
        head, _, name = entry.path.rpartition(b"/")
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=self._dir_fd(head) if head else self._root_fd)  # fmt: skip
        except OSError:
            return False
        try:
            if os.fstat(fd).st_size != size:
                return False
            hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
            while block := os.read(fd, _HELD_BLOCK):
                hasher.update(block)
            ok = hasher.hexdigest() == digest
        except OSError as e:
            raise _target_error("read", entry.path, e) from None
        finally:
            os.close(fd)
        if ok:
            self.counters.files_kept += 1
            self.counters.bytes_kept += size
        return ok

    def remove_leftovers(self) -> int:
        """Delete the temporary files of an earlier run that was killed (never followed links)."""
        removed = 0
        for parent, _dirs, names in os.walk(self.root, followlinks=False):
            for name in names:
                if _TEMP_NAME.fullmatch(name):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(parent, name))
                        removed += 1
        return removed

    def _lstat(self, path: bytes) -> os.stat_result | None:
        """``lstat`` of ``path`` under the root, through directory descriptors opened with
        O_NOFOLLOW (so a link on the way is "not held"), without creating anything."""
        *dirs, name = path.split(b"/")
        opened: list[int] = []
        fd = self._root_fd
        try:
            for d in dirs:
                fd = os.open(d, _DIR_FLAGS, dir_fd=fd)
                opened.append(fd)
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError:
            return None
        finally:
            for o in opened:
                os.close(o)

    # --- end -----------------------------------------------------------------------------------

    def finish(self) -> None:
        """Wait for every file, then set directories' modes and mtimes, deepest first, and
        fsync them so the names written in them are durable."""
        self._hand_over()
        self._check_finishers(1)
        for d in sorted(self._dirs, key=lambda d: d.path.count(b"/") if d.path else -1)[::-1]:
            fd = self._dir_fd(d.path) if d.path else self._root_fd
            try:
                if d.mode is not None:
                    os.fchmod(fd, d.mode & _MODE_MASK)
                if d.mtime_ns is not None:
                    os.utime(fd, ns=(d.mtime_ns, d.mtime_ns))
                if self.fsync:
                    os.fsync(fd)
            except OSError as e:
                raise _target_error("set the mode of", d.path or b".", e) from None
        self.close()

    def close(self) -> None:
        """Release everything; a file still open is removed, files being finished complete."""
        if self._open is not None:
            self.abort_file(self._open)
        if self._ready:  # complete and verified: finish them, whatever ended the run
            self._finishing.append(self._pool.submit(self._finish_group, self._ready))
            self._ready = []
        self._pool.shutdown(wait=True)
        self._finishing.clear()  # a later finisher's error: the first one already ended the run
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    # --- paths ---------------------------------------------------------------------------------

    def _parent(self, path: bytes) -> tuple[int, bytes]:
        head, _, name = path.rpartition(b"/")
        return (self._dir_fd(head) if head else self._root_fd), name

    def _dir_fd(self, path: bytes) -> int:
        """The descriptor of directory ``path``, created (0700) if missing, never via a symlink.

        Walks down from the deepest ancestor already open (usually the parent: siblings come
        together in a catalog), one component at a time; iterative, so no depth is too deep.
        """
        fd = self._fds.get(path)
        if fd is not None:
            self._fds.move_to_end(path)
            return fd
        known, fd = path, self._root_fd
        while known:
            known = known.rpartition(b"/")[0]
            if known in self._fds:
                fd = self._fds[known]
                break
        rest = path[len(known) + 1 :] if known else path
        for name in rest.split(b"/"):
            known = known + b"/" + name if known else name
            fd = self._open_dir(fd, name, known)
            self._fds[known] = fd
        while len(self._fds) > DIR_FDS:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        return fd

    def _open_dir(self, parent: int, name: bytes, path: bytes) -> int:
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
        except FileExistsError:
            pass
        except OSError as e:
            raise _target_error("create directory", path, e) from None
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise FormatError(
                    f"catalog path {show(path)} is not a directory (a symlink or a file), "
                    "yet the catalog places entries inside it; refusing to write through it"
                ) from None
            raise _target_error("open directory", path, e) from None

    def _remove_non_dir(self, dir_fd: int, name: bytes, path: bytes) -> None:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            raise TargetError(f"cannot replace directory {show(path)} with a symlink")
        os.unlink(name, dir_fd=dir_fd)


_HELD_BLOCK = 4 * 1024 * 1024
_TEMP_NAME = re.compile(r"\.transferd-[0-9a-f]{16}\.tmp")
"""``open_file``'s temporary names."""


def _file_mode(entry: Entry) -> int:
    return DEFAULT_FILE_MODE if entry.mode is None else entry.mode


def _target_error(action: str, path: bytes, exc: OSError) -> TargetError:
    reason = (exc.strerror or str(exc)).lower()
    return TargetError(f"cannot {action} {show(path)}: {reason}")
