"""What failed in a state directory, said so that an operator can fix it at 3 a.m.

The state directory (``--state``, ``$TRANSFERD_STATE``, systemd's ``StateDirectory=``) holds each
job's journal, key and lock, the daemon's job definitions and the manifests ``verify`` has seen.
Every ``OSError`` and ``sqlite3.Error`` met there becomes a :class:`~transferd.errors.StateError`
(exit 9) naming the path, with ``cause`` one word for why and a hint for what to do; a full file
system is a :class:`~transferd.errors.StateFullError`, which the daemon retries. A journal whose
bytes SQLite cannot read is a :class:`~transferd.errors.CheckpointCorruptError` instead: no
amount of free space repairs it.

Nothing acknowledged is lost on any of these: the journal commits a pack only after the host
acknowledged it, and a transaction SQLite could not write is rolled back whole, so the same
command, run again once the cause is fixed, resumes.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from transferd.errors import CheckpointCorruptError, StateError, StateFullError

NO_SPACE, PERMISSION, READ_ONLY = "no_space", "permission", "read_only"
IN_THE_WAY, BUSY, IO, OTHER = "in_the_way", "busy", "io", "other"

_CAUSES = {
    errno.ENOSPC: NO_SPACE,
    errno.EDQUOT: NO_SPACE,
    errno.EACCES: PERMISSION,
    errno.EPERM: PERMISSION,
    errno.EROFS: READ_ONLY,
    errno.EISDIR: IN_THE_WAY,
    errno.ENOTDIR: IN_THE_WAY,
    errno.EEXIST: IN_THE_WAY,
    errno.ENOTEMPTY: IN_THE_WAY,
    errno.ELOOP: IN_THE_WAY,
    errno.EIO: IO,
    errno.EBUSY: BUSY,
}

_REASONS = {
    errno.EISDIR: "it is a directory",
    errno.ENOTDIR: "a part of it is a file, not a directory",
    errno.EEXIST: "something else is in the way",
    errno.ELOOP: "it is a symbolic link",
}

# SQLite's primary result codes (sqlite3.h); the extended code's low byte is the primary one.
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN = 10, 11, 13, 14
_SQLITE_PROTOCOL, _SQLITE_AUTH, _SQLITE_NOTADB = 15, 23, 26
_OUR_MISTAKES = frozenset({1, 19, 20, 21, 25})
"""SQLITE_ERROR (bad SQL, a ROLLBACK with no transaction), CONSTRAINT, MISMATCH, MISUSE, RANGE."""


def _hint(cause: str, path: Path) -> str:
    where = path.parent
    again = "then run the same command again: nothing the host acknowledged is lost"
    if cause == NO_SPACE:
        return f"free space on the file system of {where} (df -h {where}), {again}"
    if cause == PERMISSION:
        return (
            f"let the user running transferd write {where} (ls -ld {where}), or give another "
            f"state directory with --state DIR; {again}"
        )
    if cause == READ_ONLY:
        return (
            f"the file system of {where} is mounted read-only: remount it read-write, or give a "
            f"state directory on a writable one with --state DIR; {again}"
        )
    if cause == IN_THE_WAY:
        return f"move {path} out of the way (transferd keeps its own file there), {again}"
    if cause == BUSY:
        return f"another program holds {path} (an sqlite3 shell?): close it, {again}"
    if cause == IO:
        return f"the disk holding {where} reported an I/O error: check it (dmesg), {again}"
    return f"fix the cause above, {again}"


def _error(message: str, path: Path, cause: str, code: int | None) -> StateError:
    cls = StateFullError if cause == NO_SPACE else StateError
    return cls(message, path=str(path), cause=cause, hint=_hint(cause, path), errno=code)


def os_error(action: str, path: Path, exc: OSError) -> StateError:
    """``exc``, met when trying to ``action`` (``"write the job key"``) at ``path``."""
    code = exc.errno
    cause = _CAUSES.get(code or 0, OTHER)
    reason = _REASONS.get(code or 0) or (exc.strerror or str(exc)).lower()
    return _error(f"cannot {action} {path}: {reason}", path, cause, code)


def is_a_bug(exc: sqlite3.Error) -> bool:
    """An error our own use of SQLite caused (an SQL error, a constraint, a closed connection),
    not the disk or the directory: it stays a bug, reported with its traceback."""
    if isinstance(exc, (sqlite3.ProgrammingError, sqlite3.InterfaceError)):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return code is None or code & 0xFF in _OUR_MISTAKES


def sqlite_error(
    action: str, path: Path, exc: sqlite3.Error
) -> StateError | CheckpointCorruptError:
    """``exc``, raised by SQLite while trying to ``action`` the journal at ``path`` (for an
    ``exc`` that is not ``is_a_bug``)."""
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    primary = (code or 0) & 0xFF
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return CheckpointCorruptError(
            f"journal {path} is damaged: {exc} ({name})",
            hint=f"move {path} aside, keeping job.key beside it, and run the same command "
            "again: the packs the host holds are adopted, not sent again",
            path=str(path),
        )
    if primary == _SQLITE_FULL:
        cause = NO_SPACE
    elif primary in (_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_PERM, _SQLITE_AUTH):
        cause = _why_not_writable(path)
    elif primary == _SQLITE_IOERR:
        # SQLite reports ENOSPC on a write as SQLITE_FULL, but growing its shared-memory file
        # on a full tmpfs, or an fsync there, as an I/O error: ask the file system.
        cause = NO_SPACE if _is_full(path.parent) else IO
    elif primary in (_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_PROTOCOL):
        cause = BUSY
    else:
        cause = OTHER
    reason = "no space left on the device" if cause == NO_SPACE else str(exc)
    return _error(f"cannot {action} the journal {path}: {reason} ({name})", path, cause, None)


def _why_not_writable(path: Path) -> str:
    """Why SQLite could not open or write ``path``: its file system is read-only, or this user
    may not write it or its directory (or, failing both, something else)."""
    try:
        if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
            return READ_ONLY
    except OSError:
        return OTHER
    for probe in (path, path.parent):
        if probe.exists() and not os.access(probe, os.W_OK):
            return PERMISSION
    return OTHER


def _is_full(directory: Path) -> bool:
    try:
        return os.statvfs(directory).f_bavail == 0
    except OSError:
        return False
