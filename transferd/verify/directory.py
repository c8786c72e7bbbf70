"""Compare a stored copy's catalog with a source directory as it is now, entry by entry.

The catalog's entries (kind, permission bits, symlink target, size, BLAKE3 of the content) go
into a temporary SQLite table as the catalog is walked (verify/deep.py), so a tree of
millions of entries is compared in bounded memory. The source is then walked *independently* of
the source driver that made the copy (``os.scandir``, ``lstat``, never following a link): a file
the driver skipped or mis-read shows up as a difference instead of being skipped twice. Each
regular file whose size matches is read again and hashed with BLAKE3 on a thread pool, several
files at once; a large file is hashed with BLAKE3's own threads.

Differences: ``source-only`` (in the source, not in the copy), ``copy-only`` (in the copy, no
longer in the source), ``differs`` (another kind, mode, link target, size or content). Modification
times are not compared: a copy proves content, and a touched but unchanged file is not a
difference. Sockets, FIFOs and devices are never copied and are counted, not reported.

A copy made with filter rules (``send --exclude/--include``) records them in its catalog's
``selection``; the walk applies the same rules, so what the copy left out on purpose is counted
as left out, not reported as ``source-only``.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import blake3

from transferd.core.catalog_walk import show
from transferd.errors import ConfigError
from transferd.report.model import Failure, Report
from transferd.util.pathfilter import PathFilter
from transferd.verify.deep import CatalogEntry

READ_SIZE = 8 * 1024 * 1024
BIG_FILE = 64 * 1024 * 1024
"""From this size a file is hashed with BLAKE3's own threads: one big table file then uses every
core instead of one."""
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_BATCH = 1000


class SourceComparison:
    """The catalog's side, filled by ``add`` during the catalog walk; then ``compare``."""

    def __init__(self, root: str | os.PathLike[str], temp_dir: str | None = None) -> None:
        self.root = os.fsencode(os.path.abspath(root))
        if not os.path.isdir(self.root):
            raise ConfigError(f"--against {os.fsdecode(self.root)} is not a directory")
        self._tmp = tempfile.TemporaryDirectory(prefix="transferd-against-", dir=temp_dir)
        self._db = sqlite3.connect(Path(self._tmp.name) / "catalog.sqlite")
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE copy (path BLOB PRIMARY KEY, kind TEXT NOT NULL, mode INTEGER,
                               size INTEGER, blake3 TEXT, target BLOB,
                               seen INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
            """
        )
        self._pending: list[tuple[bytes, str, int | None, int | None, str | None, bytes | None]]
        self._pending = []

    def close(self) -> None:
        self._db.close()
        self._tmp.cleanup()

    def add(self, item: CatalogEntry) -> None:
        e = item.entry
        self._pending.append((e.path, e.kind, e.mode, item.size, item.blake3, e.target))
        if len(self._pending) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO copy (path, kind, mode, size, blake3, target) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            self._pending,
        )
        self._pending = []

    async def compare(self, report: Report, workers: int) -> None:
        """Walk the source, report every difference, then every entry only the copy has."""
        self._flush()
        pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="transferd-against")
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()
        errors: list[tuple[bytes, str]] = []
        select = _selection(report.source)
        left_out = [0]
        walk = _walk(self.root, errors, b"", select, left_out)
        entries = specials = 0
        try:
            while batch := await loop.run_in_executor(pool, _next_batch, walk):
                for rel, message in errors:
                    self._unreadable(rel, message, report)
                errors.clear()
                for rel, st, target in batch:
                    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode) or target):
                        specials += 1
                        continue
                    entries += 1
                    check = self._check(rel, st, target, report)
                    if check is not None:
                        while len(pending) >= 2 * max(1, workers):
                            done, pending = await asyncio.wait(
                                pending, return_when=asyncio.FIRST_COMPLETED
                            )
                            for task in done:
                                task.result()
                        pending.add(asyncio.create_task(self._hash(check, pool, report)))
            if pending:
                for task in (await asyncio.wait(pending))[0]:
                    task.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        report.count("source_entries", entries)
        for path, kind in self._unseen():
            report.fail(
                Failure(
                    "copy-only",
                    f"{show(path)}: the copy has this {kind}, the source does not",
                    path=show(path),
                    expected={"kind": kind},
                )
            )
        note = f"{entries:,} source entries compared"
        if specials:
            note += f"; {specials:,} sockets, FIFOs or devices not compared (never copied)"
        if select is not None:
            report.count("source_entries_left_out", left_out[0])
            note += f"; {left_out[0]:,} left out by the copy's filter rules ({select.selection()})"
        report.notes["matches-source"] = note

    def _check(
        self, rel: bytes, st: os.stat_result, target: bytes | None, report: Report
    ) -> tuple[bytes, int, str] | None:
        """Compare what lstat says; a file to hash comes back as (path, size, blake3)."""
        row = self._db.execute(
            "SELECT kind, mode, size, blake3, target FROM copy WHERE path = ?", (rel,)
        ).fetchone()
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "file" if target is None else "symlink"
        path = show(rel)
        if row is None:
            report.fail(
                Failure(
                    "source-only",
                    f"{path}: the source has this {kind}, the copy does not",
                    path=path,
                    actual={"kind": kind},
                )
            )
            return None
        self._db.execute("UPDATE copy SET seen = 1 WHERE path = ?", (rel,))
        copy_kind, mode, size, digest, copy_target = row
        source_mode = None if kind == "symlink" else stat.S_IMODE(st.st_mode)
        problems: list[str] = []
        if copy_kind != kind:
            problems.append(f"is a {kind} in the source, a {copy_kind} in the copy")
        elif kind == "symlink" and copy_target != target:
            problems.append(
                f"links to {show(target or b'')} in the source, "
                f"to {show(copy_target or b'')} in the copy"
            )
        else:
            if mode is not None and source_mode is not None and mode != source_mode:
                problems.append(f"has mode {source_mode:04o} in the source, {mode:04o} in the copy")
            if kind == "file" and size != st.st_size:
                problems.append(f"has {st.st_size} bytes in the source, {size} in the copy")
        if problems:
            report.fail(
                Failure(
                    "differs",
                    f"{path} " + "; ".join(problems),
                    path=path,
                    expected={"kind": copy_kind, "mode": mode, "size": size},
                    actual={"kind": kind, "mode": source_mode, "size": st.st_size},
                )
            )
            return None
        if kind == "file" and digest is not None:
            return rel, st.st_size, str(digest)
        return None

    async def _hash(
        self, check: tuple[bytes, int, str], pool: ThreadPoolExecutor, report: Report
    ) -> None:
        rel, size, expected = check
        path = show(rel)
        full = os.path.join(self.root, rel)
        try:
            digest, read = await asyncio.get_running_loop().run_in_executor(
                pool, _blake3_file, full, size
            )
        except OSError as e:
            self._unreadable(rel, f"cannot be read: {e.strerror}", report)
            return
        report.count("source_bytes_hashed", read)
        if digest != expected or read != size:
            report.fail(
                Failure(
                    "differs",
                    f"{path}: its content in the source hashes to {digest}, "
                    f"the copy's to {expected}",
                    path=path,
                    expected={"size": size, "blake3": expected},
                    actual={"size": read, "blake3": digest},
                )
            )

    def _unreadable(self, rel: bytes, message: str, report: Report) -> None:
        """A source entry that could not be read: nothing is proven about it either way, and
        it is not reported as only in the copy."""
        self._db.execute("UPDATE copy SET seen = 1 WHERE path = ?", (rel,))
        report.fail(Failure("unreadable", f"{show(rel)} in the source {message}", path=show(rel)))

    def _unseen(self) -> Iterator[tuple[bytes, str]]:
        after = b""
        while rows := self._db.execute(
            "SELECT path, kind FROM copy WHERE seen = 0 AND path > ? ORDER BY path LIMIT ?",
            (after, _BATCH),
        ).fetchall():
            yield from ((bytes(p), str(k)) for p, k in rows)
            after = bytes(rows[-1][0])


Walked = tuple[bytes, os.stat_result, bytes | None]


def _selection(source: dict[str, object] | None) -> PathFilter | None:
    """The filter rules the copy was made with, from the catalog's source record."""
    text = (source or {}).get("selection")
    if (source or {}).get("kind") != "directory" or not isinstance(text, str) or not text:
        return None
    return PathFilter.from_selection(text)


def _walk(
    root: bytes,
    errors: list[tuple[bytes, str]],
    rel: bytes = b"",
    select: PathFilter | None = None,
    left_out: list[int] | None = None,
) -> Iterator[Walked]:
    """(relative path, lstat, link target or None) of everything below ``rel``, depth first in
    name order; what cannot be listed or stat'ed goes to ``errors`` and the walk goes on; what
    ``select`` leaves out is counted in ``left_out`` (a directory once, not walked)."""
    try:
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            names = sorted(e.name for e in it)
    except OSError as e:
        errors.append((rel or b".", f"cannot be listed: {e.strerror}"))
        return
    for name in names:
        child = rel + b"/" + name if rel else name
        full = os.path.join(root, child)
        try:
            st = os.lstat(full)
            target = os.readlink(full) if stat.S_ISLNK(st.st_mode) else None
        except OSError as e:
            errors.append((child, f"cannot be read: {e.strerror}"))
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if select is not None and not select.includes(child, is_dir=is_dir):
            if left_out is not None:
                left_out[0] += 1
            continue
        yield child, st, target
        if is_dir:
            yield from _walk(root, errors, child, select, left_out)


def _next_batch(walk: Iterator[Walked]) -> list[Walked]:
    batch: list[Walked] = []
    for item in walk:
        batch.append(item)
        if len(batch) >= _BATCH:
            break
    return batch


def _blake3_file(path: bytes, size: int) -> tuple[str, int]:
    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO if size >= BIG_FILE else 1)
    read = 0
    fd = os.open(path, _OPEN_FLAGS)
    try:
        while block := os.read(fd, READ_SIZE):
            hasher.update(block)
            read += len(block)
    finally:
        os.close(fd)
    return hasher.hexdigest(), read
