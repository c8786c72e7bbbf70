"""A follow job's own state beside its journal: the slot, the publication, the phase, and the
change packs and segments not yet named by a manifest.

<state>/jobs/<job>/follow.sqlite (SQLite, WAL, ``synchronous=FULL``, 0600):

- ``meta``: ``slot``, ``publication``, ``created_publication`` (1 when transferd created it and
  drops it at the cut-over), ``consistent_lsn``, ``tables`` (the snapshot's tables and their
  columns, JSON: what the changes are checked against on every resume), ``phase`` (``copy``,
  ``snapshot``: manifest 1 published, the copy phase's segments not yet; ``follow``; ``done``),
  ``snapshot_sequence``, ``cutover_lsn``;
- ``packs``: every change pack the host acknowledged, with its index in the object lists once a
  manifest lists it (NULL before);
- ``pending``: the change segments sealed during the copy, before any manifest could name them
  (their chunks are located by pack name: the index is known only once the snapshot's manifest
  has listed every pack).

A pack or segment is recorded only once the host acknowledged it; the slot is confirmed only
after the record is committed (send/follow.py).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from transferd.util import statedir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS packs (name TEXT PRIMARY KEY, size INTEGER NOT NULL, idx INTEGER);
CREATE TABLE IF NOT EXISTS pending (n INTEGER PRIMARY KEY, segment TEXT NOT NULL);
"""


class FollowState:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
            self._db = sqlite3.connect(path, isolation_level=None, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise _error("open", path, e) from None

    def close(self) -> None:
        self._db.close()

    def _run(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, tuple(args))
        except sqlite3.Error as e:
            raise _error("write", self.path, e) from None

    # --- meta ------------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        row = self._run("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, **values: str | int | None) -> None:
        """Set several values in one transaction (None deletes)."""
        self._run("BEGIN IMMEDIATE")
        try:
            for key, value in values.items():
                if value is None:
                    self._run("DELETE FROM meta WHERE key=?", (key,))
                else:
                    self._run("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))
            self._run("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def tables(self) -> list[dict[str, Any]]:
        text = self.get("tables")
        return [] if text is None else list(json.loads(text))

    # --- packs -----------------------------------------------------------------------------

    def add_pack(self, name: str, size: int) -> None:
        self._run("INSERT OR IGNORE INTO packs (name, size) VALUES (?, ?)", (name, size))

    def list_packs(self, indexes: dict[str, int]) -> None:
        self._run("BEGIN IMMEDIATE")
        try:
            for name, idx in indexes.items():
                self._run("UPDATE packs SET idx=? WHERE name=?", (idx, name))
            self._run("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def pack_index(self, name: str) -> int | None:
        row = self._run("SELECT idx FROM packs WHERE name=?", (name,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def unlisted_packs(self) -> list[str]:
        """Packs no manifest lists yet, in the order the host acknowledged them."""
        rows = self._run("SELECT name FROM packs WHERE idx IS NULL ORDER BY rowid")
        return [r[0] for r in rows]

    def pack_sizes(self, names: Iterable[str]) -> dict[str, int]:
        out = {}
        for name in names:
            row = self._run("SELECT size FROM packs WHERE name=?", (name,)).fetchone()
            if row is not None:
                out[name] = int(row[0])
        return out

    def forget_packs(self, names: Iterable[str]) -> None:
        for name in names:
            self._run("DELETE FROM packs WHERE name=?", (name,))

    def forget_packs_from(self, idx: int) -> None:
        """Packs a manifest never listed: those from index ``idx`` on, and the unlisted ones."""
        self._run("DELETE FROM packs WHERE idx IS NULL OR idx >= ?", (idx,))

    # --- the copy phase's segments -------------------------------------------------------

    def add_pending(self, segment: dict[str, Any]) -> None:
        self._run("INSERT INTO pending (segment) VALUES (?)", (json.dumps(segment),))

    def pending(self) -> Iterator[dict[str, Any]]:
        for (text,) in self._run("SELECT segment FROM pending ORDER BY n").fetchall():
            yield json.loads(text)

    def clear_pending(self) -> None:
        self._run("DELETE FROM pending")


def _error(action: str, path: Path, e: BaseException) -> Exception:
    if isinstance(e, sqlite3.Error):
        return statedir.sqlite_error(action, path, e)
    assert isinstance(e, OSError)  # noqa: S101
    return statedir.os_error(f"{action} the follow state", path, e)
