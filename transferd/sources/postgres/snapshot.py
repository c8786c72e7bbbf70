"""One consistent view of a live database: export a snapshot, hold it, and attach workers to it.

PostgreSQL lets one transaction export its snapshot (``pg_export_snapshot()``) and others adopt it
(``SET TRANSACTION SNAPSHOT``): every worker then sees exactly the rows the exporter sees, whatever
is committed meanwhile. An exported snapshot exists only while the exporting transaction is open,
so ``SnapshotHolder`` keeps one connection idle in that transaction for the whole run; a worker
that reconnects (its connection was killed) can attach again as long as the holder lives. When the
caller pins a snapshot (``--snapshot ID``, as ``pg_dump --snapshot``), the holder adopts it instead,
and the caller's transaction must stay open until the copy has started.

Every session transferd opens on a source uses ``SESSION_SETTINGS``: the text a ``COPY`` writes
depends on them (dates, intervals, floats, bytea, time zone), so the same settings are recorded in
the catalog and used again by restore and verify, and a table read twice gives the same bytes.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg

from transferd.errors import SnapshotGoneError, SourceError
from transferd.sources.postgres.conninfo import ConnInfo

TEXT_SETTINGS = ("DateStyle", "IntervalStyle", "TimeZone", "extra_float_digits", "bytea_output")
"""The settings of SESSION_SETTINGS that change the text of a value: restore and verify use them."""

SESSION_SETTINGS = {
    # The text form of values: fixed, so that COPY output is the same whatever the server's or
    # the role's defaults, and so that restore reads it back exactly (pg_dump fixes the same).
    "DateStyle": "ISO",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "xmloption": "content",
    # A table read twice must give the same bytes: no scan joining another one midway, no
    # parallel plan interleaving pages.
    "synchronize_seqscans": "off",
    "max_parallel_workers_per_gather": "0",
    # Row-level security would silently hide rows from a COPY: make it an error instead.
    "row_security": "off",
    # A copy lasts hours; the holder sits idle in its transaction all along.
    "statement_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
}


@dataclass(frozen=True)
class Snapshot:
    """The identity of the view every table of one run is read in."""

    id: str
    exported: bool
    """True when transferd exported it; False when the caller gave it with ``--snapshot``."""
    taken: str
    """RFC 3339 UTC time of the exporting statement; for a snapshot given by the caller, the time
    it was adopted (the snapshot itself is at least that old)."""
    visibility: str
    """``pg_current_snapshot()``: xmin, xmax and the transactions in progress."""
    token: str
    """A digest of server, database and snapshot: equal tokens mean the same rows (fingerprints)."""


@dataclass(frozen=True)
class ServerInfo:
    version: str
    version_num: int
    database: str
    database_oid: int
    encoding: str
    lc_monetary: str
    started: str
    system_identifier: str | None


class SnapshotHolder:
    """A connection inside the transaction whose snapshot every worker adopts."""

    def __init__(self, conn: asyncpg.Connection, snapshot: Snapshot, server: ServerInfo) -> None:
        self.conn = conn
        self.snapshot = snapshot
        self.server = server

    @classmethod
    async def open(cls, info: ConnInfo, snapshot_id: str | None) -> SnapshotHolder:
        conn = await info.connect(
            SourceError, application_name="transferd-snapshot", settings=SESSION_SETTINGS
        )
        try:
            await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            if snapshot_id is None:
                row = await conn.fetchrow(
                    "SELECT pg_export_snapshot() AS id, statement_timestamp() AS t, "
                    "pg_current_snapshot()::text AS v"
                )
                assert row is not None  # noqa: S101 - a SELECT without FROM returns one row
                sid, taken, visibility = str(row["id"]), row["t"], str(row["v"])
            else:
                await adopt(conn, snapshot_id)
                row = await conn.fetchrow(
                    "SELECT statement_timestamp() AS t, pg_current_snapshot()::text AS v"
                )
                assert row is not None  # noqa: S101
                sid, taken, visibility = snapshot_id, row["t"], str(row["v"])
            server = await _server_info(conn)
        except BaseException:
            await _close_quietly(conn)
            raise
        token = hashlib.blake2b(
            "\n".join([server.system_identifier or "", server.started, str(server.database_oid),
                       sid, visibility]).encode(),
            digest_size=16,
        ).hexdigest()  # fmt: skip
        snapshot = Snapshot(sid, snapshot_id is None, rfc3339(taken), visibility, token)
        return cls(conn, snapshot, server)

    def identity(self) -> dict[str, Any]:
        s, v = self.snapshot, self.server
        ident: dict[str, Any] = {
            "server_version": v.version,
            "server_version_num": v.version_num,
            "database": v.database,
            "server_encoding": v.encoding,
            "lc_monetary": v.lc_monetary,
            "postmaster_started": v.started,
            "snapshot": s.id,
            "snapshot_origin": "exported" if s.exported else "given",
            "snapshot_time": s.taken,
            "snapshot_visibility": s.visibility,
            "copy_settings": settings_text(),
        }
        if v.system_identifier is not None:
            ident["system_identifier"] = v.system_identifier
        return ident

    async def close(self) -> None:
        """End the transaction (the snapshot dies with it) and the connection."""
        await _close_quietly(self.conn)


async def adopt(conn: asyncpg.Connection, snapshot_id: str) -> None:
    """Make ``conn``'s new transaction see exactly ``snapshot_id`` (it must still be exported)."""
    if not conn.is_in_transaction():
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        await conn.execute(f"SET TRANSACTION SNAPSHOT {quote_literal(snapshot_id)}")
    except (asyncpg.InvalidParameterValueError, asyncpg.UndefinedObjectError,
            asyncpg.ObjectNotInPrerequisiteStateError) as e:  # fmt: skip
        raise SnapshotGoneError(snapshot_id, str(e)) from None


async def _server_info(conn: asyncpg.Connection) -> ServerInfo:
    row = await conn.fetchrow(
        "SELECT current_setting('server_version') AS version, "
        "current_setting('server_version_num')::int AS num, current_database() AS db, "
        "(SELECT oid FROM pg_database WHERE datname = current_database()) AS dboid, "
        "current_setting('server_encoding') AS enc, current_setting('lc_monetary') AS mon, "
        "pg_postmaster_start_time() AS started"
    )
    assert row is not None  # noqa: S101
    sysid: str | None
    try:
        await conn.execute("SAVEPOINT transferd_sysid")
        sysid = str(await conn.fetchval("SELECT system_identifier FROM pg_control_system()"))
        await conn.execute("RELEASE SAVEPOINT transferd_sysid")
    except asyncpg.InsufficientPrivilegeError:  # revoked on some hardened servers
        await conn.execute("ROLLBACK TO SAVEPOINT transferd_sysid")
        sysid = None
    return ServerInfo(
        version=str(row["version"]),
        version_num=int(row["num"]),
        database=str(row["db"]),
        database_oid=int(row["dboid"]),
        encoding=str(row["enc"]),
        lc_monetary=str(row["mon"]),
        started=rfc3339(row["started"]),
        system_identifier=sysid,
    )


@contextlib.asynccontextmanager
async def locks_released(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Run queries in a savepoint rolled back afterwards, which releases the locks they took.

    The holder's transaction lasts the whole copy. Anything that opens a table in it (reading a
    sequence, ``pg_table_size``) would keep an ACCESS SHARE lock on it until the end: an
    ``ALTER TABLE`` or ``DROP`` would then wait for days, and every query on that table would
    queue behind it. Rolling back to a savepoint releases what the savepoint took; the snapshot
    is the transaction's and stays.
    """
    await conn.execute("SAVEPOINT transferd_locks")
    try:
        yield
    finally:
        if not conn.is_closed():
            await conn.execute(
                "ROLLBACK TO SAVEPOINT transferd_locks; RELEASE SAVEPOINT transferd_locks"
            )


def settings_text() -> str:
    """The settings that shape COPY text, as the catalog records them: ``name=value;…``."""
    return ";".join(f"{k}={SESSION_SETTINGS[k]}" for k in TEXT_SETTINGS)


def rfc3339(t: datetime.datetime) -> str:
    """UTC, microseconds, ``Z``: the snapshot's time to the precision the server keeps."""
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def quote_literal(text: str) -> str:
    """A SQL string literal (standard_conforming_strings is on in every session we open)."""
    return "'" + text.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _close_quietly(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        conn.terminate()
