"""A job's two object sets, kept on disk: what the store lists, and what the manifests reference.

Verifying means comparing them (referenced but not listed: missing; listed but not referenced:
extra; both: check size and hash). A job of millions of packs must not need their names in
memory (MISSION.md: nothing may assume a job's state fits in memory), so both sets live in a
throw-away SQLite database in a temporary directory: the page cache holds what fits, the rest
stays on disk, and lookups and anti-joins are indexed. SQLite is used from one thread only.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

PAGE = 1000
"""Rows fetched per query when paging through a set: bounds memory, keeps query overhead low."""


@dataclass(frozen=True, slots=True)
class Ref:
    """An object a manifest names: which manifest first named it, and as what."""

    name: str
    size: int
    kind: str
    """``pack``, ``object-list`` or ``catalog``."""
    manifest: int
    listed_size: int | None = None
    """Its size in the store's listing, or None when the store does not list it."""


class Inventory:
    def __init__(self, directory: str | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="transferd-verify-", dir=directory)
        self._db = sqlite3.connect(Path(self._tmp.name) / "inventory.sqlite")
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA cache_size = -32768;
            CREATE TABLE listed (name TEXT PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID;
            CREATE TABLE refs (name TEXT PRIMARY KEY, size INTEGER NOT NULL, kind TEXT NOT NULL,
                               manifest INTEGER NOT NULL, checked INTEGER NOT NULL DEFAULT 0)
                               WITHOUT ROWID;
            """
        )

    def close(self) -> None:
        self._db.close()
        self._tmp.cleanup()

    # --- filling ------------------------------------------------------------------------------

    def add_listed(self, entries: Iterable[tuple[str, int]]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO listed VALUES (?, ?)", entries)

    def add_ref(self, name: str, size: int, kind: str, manifest: int) -> bool:
        """Record a reference; False when the object was already referenced (checked once)."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO refs (name, size, kind, manifest) VALUES (?, ?, ?, ?)",
            (name, size, kind, manifest),
        )
        return cur.rowcount == 1

    def add_refs(self, refs: Iterable[tuple[str, int, str, int]]) -> None:
        self._db.executemany(
            "INSERT OR IGNORE INTO refs (name, size, kind, manifest) VALUES (?, ?, ?, ?)", refs
        )

    def mark_checked(self, name: str) -> None:
        self._db.execute("UPDATE refs SET checked = 1 WHERE name = ?", (name,))

    # --- lookups ------------------------------------------------------------------------------

    def listed_size(self, name: str) -> int | None:
        row = self._db.execute("SELECT size FROM listed WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def ref(self, name: str) -> Ref | None:
        row = self._db.execute(
            "SELECT r.name, r.size, r.kind, r.manifest, l.size FROM refs r "
            "LEFT JOIN listed l ON l.name = r.name WHERE r.name = ?",
            (name,),
        ).fetchone()
        return None if row is None else Ref(*row)

    def counts(self) -> tuple[int, int, int]:
        """(objects listed, objects referenced, bytes referenced)."""
        listed = self._db.execute("SELECT count(*) FROM listed").fetchone()[0]
        refs, size = self._db.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM refs"
        ).fetchone()
        return int(listed), int(refs), int(size)

    # --- the three sets, paged in name order -----------------------------------------------

    def to_check(self) -> Iterator[Ref]:
        """Referenced objects the store lists and nobody has checked yet."""
        yield from self._paged(
            "SELECT r.name, r.size, r.kind, r.manifest, l.size FROM refs r "
            "JOIN listed l ON l.name = r.name WHERE r.checked = 0 AND r.name > ? "
            "ORDER BY r.name LIMIT ?",
            lambda row: Ref(*row),
        )

    def missing(self) -> Iterator[Ref]:
        """Referenced objects the store does not list."""
        yield from self._paged(
            "SELECT r.name, r.size, r.kind, r.manifest, NULL FROM refs r "
            "WHERE r.name > ? AND NOT EXISTS (SELECT 1 FROM listed l WHERE l.name = r.name) "
            "ORDER BY r.name LIMIT ?",
            lambda row: Ref(*row),
        )

    def extra(self) -> Iterator[tuple[str, int]]:
        """Listed objects that no trusted manifest references."""
        yield from self._paged(
            "SELECT l.name, l.size FROM listed l WHERE l.name > ? "
            "AND NOT EXISTS (SELECT 1 FROM refs r WHERE r.name = l.name) "
            "ORDER BY l.name LIMIT ?",
            lambda row: (str(row[0]), int(row[1])),
        )

    def _paged(self, sql: str, make: Callable[[Any], T]) -> Iterator[T]:
        """Rows of ``sql`` (which takes the last name seen and a limit), a page at a time, so the
        caller may update the tables between pages."""
        after = ""
        while True:
            rows = self._db.execute(sql, (after, PAGE)).fetchall()
            for row in rows:
                yield make(row)
            if len(rows) < PAGE:
                return
            after = rows[-1][0]
