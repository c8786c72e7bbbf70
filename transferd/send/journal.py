"""The sender's durable journal: what the storage host has acknowledged, and what was read.

SQLite in WAL mode with ``synchronous=FULL``: a committed transaction survives a crash or a power
cut. The write-order rule (protocol/SPEC.md, restic's design.rst "Read and Write Ordering"):

- a pack and its chunks enter the journal only after the host acknowledged the pack as durable,
  so every chunk the journal names is held by the host;
- an entry (file, table) records the chunk ids it is made of as soon as it was read, but is
  reused on resume only if every one of those chunks is in the acknowledged ``chunks`` table and
  the source has not changed since (same size, mtime, ctime, inode);
- resume reads in reverse: it asks the host which acknowledged packs it still holds and drops
  from the journal whatever the host lost, before trusting anything else.

The journal never holds a key: the job key lives in its own 0600 file beside it.

Every SQLite failure the disk or the directory causes (full, read-only, permission denied, an
I/O error, a damaged file) is raised as the StateError or CheckpointCorruptError that names the
journal and what to do (util/statedir.py). A transaction SQLite could not write is rolled back
whole, by SQLite itself when the error says so: ``ROLLBACK`` is sent only while a transaction is
still open, so the error reported is the one that happened ("database or disk is full"), not
"cannot rollback - no transaction is active".
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from transferd.core.catalog import ChunkRef
from transferd.core.source_entry import SourceEntry
from transferd.errors import CheckpointCorruptError
from transferd.util import statedir

P = ParamSpec("P")
R = TypeVar("R")

SCHEMA_VERSION = 1
_IN_BATCH = 500
"""Ids per ``IN (...)`` query: below SQLite's oldest limit of 999 bound parameters."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS packs (
    id INTEGER PRIMARY KEY,          -- order in which packs were acknowledged
    name TEXT NOT NULL UNIQUE,       -- hex SHA-256 of the pack
    size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id BLOB PRIMARY KEY,
    pack_id INTEGER NOT NULL REFERENCES packs(id),
    offset INTEGER NOT NULL,
    blob_len INTEGER NOT NULL,
    plain_len INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_by_pack ON chunks(pack_id);
CREATE TABLE IF NOT EXISTS entries (
    path BLOB PRIMARY KEY,           -- raw bytes of the relative path (or table name)
    kind TEXT NOT NULL,              -- a catalog record type: file, dir, symlink, table
    mode INTEGER, mtime_ns INTEGER, size INTEGER, target BLOB, blake3 TEXT,
    extra TEXT,                      -- kind-specific catalog fields, canonical JSON
    fingerprint TEXT,                -- the source's "unchanged since" token
    run INTEGER NOT NULL             -- the run that last saw this entry
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entry_chunks (
    path BLOB NOT NULL, n INTEGER NOT NULL, chunk_id BLOB NOT NULL,
    PRIMARY KEY (path, n)
) WITHOUT ROWID;
"""


def _guarded(
    action: str,
) -> Callable[[Callable[Concatenate[Journal, P], R]], Callable[Concatenate[Journal, P], R]]:
    """Raise the SQLite errors of a journal method as the StateError naming the journal."""

    def wrap(method: Callable[Concatenate[Journal, P], R]) -> Callable[Concatenate[Journal, P], R]:
        @functools.wraps(method)
        def guarded(self: Journal, /, *args: P.args, **kwargs: P.kwargs) -> R:
            with self.errors(action):
                return method(self, *args, **kwargs)

        return guarded

    return wrap


def _guarded_iter(
    action: str,
) -> Callable[
    [Callable[Concatenate[Journal, P], Iterator[R]]], Callable[Concatenate[Journal, P], Iterator[R]]
]:
    """``_guarded`` for a method that returns an iterator: the errors come while it is read."""

    def wrap(
        method: Callable[Concatenate[Journal, P], Iterator[R]],
    ) -> Callable[Concatenate[Journal, P], Iterator[R]]:
        @functools.wraps(method)
        def guarded(self: Journal, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[R]:
            with self.errors(action):
                yield from method(self, *args, **kwargs)

        return guarded

    return wrap


_REUSABLE = (
    "SELECT e.path, e.kind, e.mode, e.mtime_ns, e.size, e.target, e.blake3, e.extra, "
    "e.fingerprint FROM entries e WHERE e.path IN (?) AND e.blake3 IS NOT NULL AND NOT EXISTS ("
    "SELECT 1 FROM entry_chunks ec LEFT JOIN chunks c ON c.chunk_id = ec.chunk_id "
    "WHERE ec.path = e.path AND c.chunk_id IS NULL)"
)
"""Entries at the given paths read to their end (a hash) with no chunk missing from ``chunks``;
``(?)`` becomes one placeholder per path."""


class Journal:
    """One job's journal. Writes go through one connection from one thread at a time (the
    caller's); worker threads read through ``reader()`` connections of their own."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """``read_only`` (``send --dry-run``): nothing is written, not even SQLite's own files:
        ``immutable`` when no write-ahead log is beside the journal (else SQLite would create
        its shared-memory file); reads then run on the calling thread's one connection."""
        self.path = path
        self._local = threading.local()
        with self.errors("open"):
            if read_only:
                mode = "ro" if Path(f"{path}-wal").exists() else "ro&immutable=1"
                self._db = sqlite3.connect(f"file:{path}?mode={mode}", uri=True)
                self._local.db = self._db
            else:
                self._db = self._connect()
        try:
            if not read_only:
                with self.errors("open"):
                    self._db.executescript(_SCHEMA)
            with self.errors("open"):
                version = self.get_meta("schema")
            if version is None and not read_only:
                self.set_meta("schema", str(SCHEMA_VERSION))
            elif version != str(SCHEMA_VERSION):
                has = "records no schema" if version is None else f"has schema {version}"
                raise CheckpointCorruptError(
                    f"journal {path} {has}; this transferd reads {SCHEMA_VERSION}",
                    path=str(path),
                )
        except BaseException:
            self._db.close()
            raise

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """SQLite's errors inside the block as the StateError or CheckpointCorruptError that
        names this journal; our own misuse of SQLite stays a bug."""
        try:
            yield
        except sqlite3.Error as e:
            if statedir.is_a_bug(e):
                raise
            raise statedir.sqlite_error(action, self.path, e) from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; on any failure, ``ROLLBACK`` if the transaction is
        still open. SQLite ends it by itself on some errors (a full disk, an I/O error): a
        ROLLBACK then fails with "no transaction is active" and would hide the first error."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the first error is the one to report
                    db.execute("ROLLBACK")
            raise

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def reader(self) -> sqlite3.Connection:
        """A read connection private to the calling thread (WAL: readers run beside the writer)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            with self.errors("open"):
                db = self._connect()
                db.execute("PRAGMA query_only=ON")
            self._local.db = db
        return db

    @_guarded("close")
    def close(self) -> None:
        self._db.close()

    # --- meta --------------------------------------------------------------------------------

    @_guarded("read")
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @_guarded("write")
    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # --- packs and chunks: only what the host acknowledged ----------------------------------

    @_guarded("write")
    def record_pack(
        self, name: str, size: int, chunks: Iterable[tuple[bytes, int, int, int]]
    ) -> None:
        """One acknowledged pack and its (chunk_id, offset, blob_len, plain_len), atomically."""
        with self._transaction() as db:
            cur = db.execute("INSERT OR IGNORE INTO packs(name, size) VALUES (?, ?)", (name, size))
            if cur.rowcount == 0:
                return  # recorded already: the transaction commits nothing
            pack_id = cur.lastrowid
            db.executemany(
                "INSERT OR IGNORE INTO chunks VALUES (?, ?, ?, ?, ?)",
                ((cid, pack_id, off, blen, plen) for cid, off, blen, plen in chunks),
            )

    @_guarded_iter("read")
    def pack_names(self) -> Iterator[list[str]]:
        """Acknowledged pack names in batches of 1000, in acknowledgement order."""
        last = 0
        while True:
            rows = self._db.execute(
                "SELECT id, name FROM packs WHERE id > ? ORDER BY id LIMIT 1000", (last,)
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [r[1] for r in rows]

    @_guarded("write")
    def forget_packs(self, names: Iterable[str]) -> int:
        """Drop packs the host no longer holds, with their chunks; returns how many were dropped."""
        dropped = 0
        with self._transaction() as db:
            for name in names:
                row = db.execute("SELECT id FROM packs WHERE name=?", (name,)).fetchone()
                if row is None:
                    continue
                db.execute("DELETE FROM chunks WHERE pack_id=?", (row[0],))
                db.execute("DELETE FROM packs WHERE id=?", (row[0],))
                dropped += 1
        return dropped

    @_guarded("read")
    def has_pack(self, name: str) -> bool:
        return self._db.execute("SELECT 1 FROM packs WHERE name=?", (name,)).fetchone() is not None

    @_guarded("read")
    def counts(self) -> tuple[int, int, int]:
        """(packs, stored bytes, chunks) acknowledged so far."""
        packs, size = self._db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM packs"
        ).fetchone()
        (chunks,) = self._db.execute("SELECT count(*) FROM chunks").fetchone()
        return int(packs), int(size), int(chunks)

    @_guarded("read")
    def known_chunks(self, chunk_ids: Sequence[bytes]) -> set[bytes]:
        """Which of ``chunk_ids`` are acknowledged, on the calling thread's reader: one query
        per 500 ids, where a query per chunk cost more than sealing the chunk when files are
        small."""
        db = self.reader()
        known: set[bytes] = set()
        for start in range(0, len(chunk_ids), _IN_BATCH):
            batch = chunk_ids[start : start + _IN_BATCH]
            marks = ",".join("?" * len(batch))  # only placeholders go into the text
            query = f"SELECT chunk_id FROM chunks WHERE chunk_id IN ({marks})"  # noqa: S608
            rows = db.execute(query, batch)
            known.update(row[0] for row in rows)
        return known

    @_guarded("read")
    def has_chunks(self) -> bool:
        return self._db.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is not None

    # --- entries ------------------------------------------------------------------------------

    @_guarded("write")
    def put_entries(
        self, items: Iterable[tuple[SourceEntry, list[bytes] | None]], run: int
    ) -> None:
        """Record entries seen in ``run`` with their chunk ids (None: keep the recorded list)."""
        items = list(items)
        # the last list given for a path wins, as it did when each entry was written in turn
        with_chunks = {e.path: ids for e, ids in items if ids is not None}
        with self._transaction() as db:
            # Three statements per batch rather than three per entry: 20,000 small files
            # spent more time here than being compressed.
            db.executemany(
                "INSERT OR REPLACE INTO entries VALUES (?,?,?,?,?,?,?,?,?,?)",
                ((e.path, e.kind, e.mode, e.mtime_ns, e.size, e.target, e.blake3, e.extra,
                  e.fingerprint, run) for e, _ in items),
            )  # fmt: skip
            db.executemany(
                "DELETE FROM entry_chunks WHERE path=?", ((path,) for path in with_chunks)
            )
            db.executemany(
                "INSERT INTO entry_chunks VALUES (?, ?, ?)",
                ((path, n, cid) for path, ids in with_chunks.items() for n, cid in enumerate(ids)),
            )

    @_guarded("read")
    def reusable_entries(self, paths: Sequence[bytes]) -> dict[bytes, SourceEntry]:
        """The recorded entries at ``paths`` whose every chunk is acknowledged and that were
        read to their end, on the calling thread's reader: one query per 500 paths, where a
        query per file cost 20,000 queries for 20,000 small files on a resume."""
        db = self.reader()
        found: dict[bytes, SourceEntry] = {}
        for start in range(0, len(paths), _IN_BATCH):
            batch = paths[start : start + _IN_BATCH]
            marks = ",".join("?" * len(batch))  # only placeholders go into the text
            for row in db.execute(_REUSABLE.replace("(?)", f"({marks})"), batch):
                found[row[0]] = SourceEntry(*row)
        return found

    @_guarded("read")
    def has_entries(self) -> bool:
        return self._db.execute("SELECT 1 FROM entries LIMIT 1").fetchone() is not None

    @_guarded("write")
    def touch_entries(self, paths: Iterable[bytes], run: int) -> None:
        with self._transaction() as db:
            db.executemany("UPDATE entries SET run=? WHERE path=?", ((run, p) for p in paths))

    @_guarded_iter("read")
    def entries_of_run(self, run: int) -> Iterator[tuple[SourceEntry, Iterator[ChunkRef]]]:
        """Entries seen in ``run`` in bytewise path order, each with its chunk references; pack
        indexes are dense positions in acknowledgement order (the object lists' order).

        One query for the whole run, grouped here by path: a query per entry cost 20,000
        queries for 20,000 small files at publication, when nothing else runs. An entry's
        references come from the same cursor: they must be taken before the next entry, or
        they are skipped."""
        db = self._db  # temp tables need a writable connection; they are private to it
        db.execute("DROP TABLE IF EXISTS temp.pack_index")
        db.execute(
            "CREATE TEMP TABLE pack_index AS "
            "SELECT id, row_number() OVER (ORDER BY id) - 1 AS idx FROM packs"
        )
        rows = db.execute(
            "SELECT e.*, pi.idx, c.offset, c.blob_len, c.plain_len, c.chunk_id FROM entries e "
            "LEFT JOIN entry_chunks ec ON ec.path = e.path "
            "LEFT JOIN chunks c ON c.chunk_id = ec.chunk_id "
            "LEFT JOIN temp.pack_index pi ON pi.id = c.pack_id "
            "WHERE e.run=? ORDER BY e.path, ec.n",
            (run,),
        )
        for _, group in itertools.groupby(rows, key=_path_of):
            first = next(group)
            yield SourceEntry(*first[:9]), self._refs_of(first, group)  # noqa: B031 - used once

    @_guarded_iter("read")
    def _refs_of(
        self, first: tuple[Any, ...], rest: Iterator[tuple[Any, ...]]
    ) -> Iterator[ChunkRef]:
        """The chunk references in an entry's rows (columns 10 to 14), in order: read from the
        run's cursor as the caller takes them. A chunk that the ``chunks`` table lacks is left
        out, as the inner join of the query per entry did."""
        for row in itertools.chain((first,), rest):
            if row[10] is not None and row[14] is not None:
                yield ChunkRef(row[10], row[11], row[12], row[13], row[14])

    @_guarded_iter("read")
    def packs_in_order(self) -> Iterator[tuple[str, int]]:
        yield from self.reader().execute("SELECT name, size FROM packs ORDER BY id")

    @_guarded("read")
    def chunk_count_of(self, path: bytes) -> int:
        (n,) = self._db.execute(
            "SELECT count(*) FROM entry_chunks WHERE path=?", (path,)
        ).fetchone()
        return int(n)


def _path_of(row: tuple[Any, ...]) -> bytes:
    path: bytes = row[0]
    return path
