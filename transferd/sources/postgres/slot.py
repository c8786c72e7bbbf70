"""A logical replication slot and the connection that streams it (psycopg2), on the event loop.

psycopg2's ``LogicalReplicationConnection`` is the maintained Python driver that speaks the
streaming replication protocol (asyncpg and psycopg 3 do not). What transferd needs of it:

- ``CREATE_REPLICATION_SLOT name LOGICAL pgoutput (SNAPSHOT 'export')`` on the replication
  connection: the slot's consistent point and the exported snapshot are the same instant. The
  command waits for every transaction running at that moment to end, so it runs on a thread;
  the snapshot lives until the connection's next command, so the caller adopts it (and exports
  it again from its own session, sources/postgres/snapshot.py) before ``start``;
- ``START_REPLICATION`` of ``pgoutput`` protocol 1 with ``messages 'true'`` (the cut-over
  marker is a logical decoding message), values under transferd's session settings, so each
  value is the text ``COPY`` writes;
- feedback we choose: the *flush* position moves only when ``ack`` is called, which the follow
  calls once the host holds the changes up to there and the manifest naming them is published.
  ``write`` follows what was received, which is what a stopping server waits for.

Reading runs on the event loop: ``read_message`` never blocks, and ``add_reader`` on the
connection's socket wakes the pump when bytes arrive. The pump puts messages into a bounded
queue; when the queue is full the pump waits, the socket fills, and the server waits too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras

from transferd.core.pgoutput import lsn_text, parse_lsn
from transferd.errors import SourceError
from transferd.sources.postgres.conninfo import ConnInfo
from transferd.sources.postgres.snapshot import SESSION_SETTINGS, TEXT_SETTINGS, quote_literal

log = logging.getLogger(__name__)

STATUS_INTERVAL = 5
"""Seconds between status messages to the server when nothing else is sent (the server's
``wal_sender_timeout`` is 60 s by default: well inside it)."""
QUEUE_MESSAGES = 10_000
"""Messages received and not yet taken by the follow: bounds the memory a burst can take."""
MARKER_PREFIX = "transferd-cutover"
"""The prefix of the logical decoding message that marks the cut-over point."""

OPTIONS = " ".join(f"-c {k}={SESSION_SETTINGS[k]}" for k in TEXT_SETTINGS) + (
    " -c client_encoding=UTF8"
)
"""The walsender formats values with each type's output function under these settings: the
same as every other session transferd opens, so a change's text is COPY's text."""


def slot_name(job: str) -> str:
    """The slot of a job: ``transferd_`` and the job's name in slot characters, with a digest of
    the exact name so that ``a.b`` and ``a_b`` do not share one (slot names: a-z 0-9 _, 63)."""
    clean = re.sub(r"[^a-z0-9_]", "_", job)[:40]
    digest = hashlib.blake2b(job.encode(), digest_size=5).hexdigest()
    return f"transferd_{clean}_{digest}"


def publication_name(job: str) -> str:
    return slot_name(job)


@dataclass(frozen=True)
class Message:
    """One message of the stream, as the server sent it."""

    payload: bytes
    data_start: int
    """The LSN of the WAL record the message comes from (for a logical decoding message: the
    end of its record, which ``pg_logical_emit_message`` returned)."""
    wal_end: int


class ReplicationStream:
    """A replication connection: create the slot once, then stream it from a position."""

    def __init__(self, info: ConnInfo, slot: str, publication: str) -> None:
        self.info = info
        self.slot = slot
        self.publication = publication
        self.conn: psycopg2.extensions.connection | None = None
        self.cur: psycopg2.extras.ReplicationCursor | None = None
        self.received = 0
        """The server's WAL end as of its last message or keepalive: everything before it that
        the publication carries has been received."""
        self.acked = 0
        self.queue: asyncio.Queue[Message | BaseException] = asyncio.Queue(QUEUE_MESSAGES)
        self._pump: asyncio.Task[None] | None = None
        self._written = 0

    async def connect(self) -> None:
        self.conn = await asyncio.to_thread(self._connect)
        cursor = self.conn.cursor()
        assert isinstance(cursor, psycopg2.extras.ReplicationCursor)  # noqa: S101
        self.cur = cursor

    def _connect(self) -> psycopg2.extensions.connection:
        try:
            return psycopg2.connect(
                self.info.libpq_string(),
                password=self.info.password,
                options=OPTIONS,
                application_name="transferd-follow",
                connection_factory=psycopg2.extras.LogicalReplicationConnection,
            )
        except psycopg2.OperationalError as e:
            raise _connect_error(self.info, e) from None

    async def create_slot(self) -> tuple[int, str]:
        """Create the slot; (consistent point, exported snapshot id). Adopt the snapshot before
        this connection's next command: it dies then."""
        cur = self._cursor()
        command = f"CREATE_REPLICATION_SLOT {self.slot} LOGICAL pgoutput (SNAPSHOT 'export')"

        def create() -> tuple[Any, ...] | None:
            cur.execute(command)
            return cur.fetchone()

        try:
            row = await asyncio.to_thread(create)
        except psycopg2.errors.DuplicateObject:
            raise SourceError(
                f"replication slot {self.slot} already exists at {self.info.server}",
                hint=f"another follow of this job runs, or one was left: SELECT "
                f"pg_drop_replication_slot('{self.slot}')",
            ) from None
        except psycopg2.Error as e:
            raise SourceError(f"cannot create replication slot {self.slot}: {_reason(e)}") from None
        if row is None:
            raise SourceError(f"creating replication slot {self.slot} returned nothing")
        return parse_lsn(str(row[1])), str(row[2])

    def start(self, start_lsn: int, acked: int) -> None:
        """Stream from ``start_lsn`` (the server starts at the slot's confirmed position if that
        is later); ``acked``: what is stored already, confirmed again at once (PostgreSQL 15
        may have forgotten it over a restart)."""
        cur = self._cursor()
        try:
            cur.start_replication(
                slot_name=self.slot, decode=False, start_lsn=start_lsn,
                options={"proto_version": "1", "publication_names": self.publication,
                         "messages": "true"},
                status_interval=STATUS_INTERVAL,
            )  # fmt: skip
            if acked:
                self.acked = acked
                cur.send_feedback(flush_lsn=acked, force=True)  # type: ignore[no-untyped-call]
        except psycopg2.Error as e:
            raise SourceError(f"cannot stream replication slot {self.slot}: {_reason(e)}") from None
        self._pump = asyncio.create_task(self._run_pump(), name="follow-pump")

    def _cursor(self) -> psycopg2.extras.ReplicationCursor:
        if self.cur is None:
            raise RuntimeError("ReplicationStream.connect() first")
        return self.cur

    async def _run_pump(self) -> None:
        try:
            await self._pump_messages()
        except asyncio.CancelledError:
            raise
        except (psycopg2.Error, OSError) as e:
            await self.queue.put(
                SourceError(
                    f"the replication connection to {self.info.server} failed: {_reason(e)}"
                )
            )

    async def _pump_messages(self) -> None:
        loop = asyncio.get_running_loop()
        cur, conn = self._cursor(), self.conn
        assert conn is not None  # noqa: S101 - connect() set both
        ready = asyncio.Event()
        fd = conn.fileno()
        loop.add_reader(fd, ready.set)
        try:
            while True:
                msg = cur.read_message()  # never blocks; also sends due status messages
                if msg is not None:
                    self.received = max(self.received, msg.data_start)
                    await self.queue.put(Message(bytes(msg.payload), msg.data_start, msg.wal_end))
                    continue
                ready.clear()
                # everything the server sent is *written*: a stopping server waits for that
                end = max(cur.wal_end, self.received)
                self.received = end
                if end > self._written:
                    self._written = end
                    cur.send_feedback(write_lsn=end, force=True)  # type: ignore[no-untyped-call]
                timeout = max(
                    0.1, STATUS_INTERVAL - (time.time() - cur.feedback_timestamp.timestamp())
                )
                try:
                    async with asyncio.timeout(timeout):  # not wait_for: stores/ratelimit.py
                        await ready.wait()
                except TimeoutError:
                    cur.send_feedback()  # type: ignore[no-untyped-call]  # a status message with the positions already given
        finally:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(fd)

    def ack(self, lsn: int) -> None:
        """The storage host holds everything up to ``lsn`` and a manifest names it: the slot may
        let go of the WAL before it."""
        if lsn <= self.acked or self.cur is None:
            return
        self.acked = lsn
        try:
            self.cur.send_feedback(flush_lsn=lsn, force=True)  # type: ignore[no-untyped-call]
        except psycopg2.Error as e:
            # the position is confirmed again when the stream is next started (start(acked=))
            log.warning("could not confirm %s to the source: %s", lsn_text(lsn), _reason(e))

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
        if self.conn is not None:
            with contextlib.suppress(psycopg2.Error):
                self.conn.close()
            self.conn = None
            self.cur = None


# --- the slot seen from an ordinary session ---------------------------------------------------


@dataclass(frozen=True)
class SlotState:
    current_lsn: int
    confirmed_lsn: int | None
    restart_lsn: int | None
    active: bool
    wal_status: str | None

    @property
    def unconfirmed_bytes(self) -> int:
        return max(0, self.current_lsn - (self.confirmed_lsn or self.current_lsn))

    @property
    def retained_bytes(self) -> int:
        return max(0, self.current_lsn - (self.restart_lsn or self.current_lsn))


async def slot_state(conn: asyncpg.Connection, slot: str) -> SlotState | None:
    row = await conn.fetchrow(
        "SELECT pg_current_wal_lsn()::text AS cur, confirmed_flush_lsn::text AS cf, "
        "restart_lsn::text AS r, active, wal_status FROM pg_replication_slots "
        "WHERE slot_name = $1",
        slot,
    )
    if row is None:
        return None
    return SlotState(
        parse_lsn(row["cur"]),
        None if row["cf"] is None else parse_lsn(row["cf"]),
        None if row["r"] is None else parse_lsn(row["r"]),
        bool(row["active"]),
        row["wal_status"],
    )


async def drop_slot(conn: asyncpg.Connection, slot: str, attempts: int = 20) -> bool:
    """Drop the slot if it exists; a slot still active (its walsender ending) is tried again."""
    for _ in range(attempts):
        try:
            dropped = await conn.fetchval(
                "SELECT pg_drop_replication_slot(slot_name) IS NULL FROM pg_replication_slots "
                "WHERE slot_name = $1",
                slot,
            )
            return bool(dropped)
        except asyncpg.ObjectInUseError:
            await asyncio.sleep(0.5)
    raise SourceError(f"replication slot {slot} stays in use: it could not be dropped")


async def emit_marker(conn: asyncpg.Connection, job: str) -> int:
    """Write the cut-over marker into the WAL; its LSN. Every transaction that committed before
    it arrives on the stream before it (WAL order)."""
    lsn = await conn.fetchval(
        "SELECT pg_logical_emit_message(false, $1, $2)::text", MARKER_PREFIX, job
    )
    return parse_lsn(str(lsn))


def marker_of(message: bytes) -> str | None:
    """The prefix of a logical decoding message (``M``), if it is one."""
    # Byte1('M'), Int8 flags, Int64 LSN, String prefix, Int32 length, content (protocol 1)
    if message[:1] != b"M" or len(message) < 11:
        return None
    end = message.find(b"\0", 10)
    return None if end < 0 else message[10:end].decode("utf-8", "replace")


def quote_slot(slot: str) -> str:
    return quote_literal(slot)


def _connect_error(info: ConnInfo, e: psycopg2.Error) -> SourceError:
    reason = _reason(e)
    if "replication" in reason and ("pg_hba" in reason or "no pg_hba.conf entry" in reason):
        return SourceError(
            f"{info.server} refuses replication connections from this host: {reason}",
            hint="add a pg_hba.conf line for this user and database (logical replication "
            "connections match the database name), then SELECT pg_reload_conf()",
            server=info.server,
        )
    return SourceError(
        f"cannot open a replication connection to {info.server}: {reason}",
        hint="check that the server runs, accepts this host and that the role has REPLICATION",
        server=info.server,
    )


def _reason(e: BaseException) -> str:
    text = str(getattr(e, "pgerror", None) or e).strip()
    return text.removeprefix("ERROR:").strip() or type(e).__name__
