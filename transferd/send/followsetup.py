"""A follow's first steps on the source: pre-flight, publication, slot, and the snapshot held.

The publication is created before the slot: pgoutput reads it as of each change's place in the
WAL, so changes written before it existed would not be published. The slot is then created with
an exported snapshot, adopted by a holder session that exports it again (the replication
connection is then free to stream, sources/postgres/slot.py), and the tables are listed in that
snapshot: a table created between the publication and the slot is in the snapshot but not
published, and is refused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import asyncpg

from transferd.errors import SourceError
from transferd.send.followstate import FollowState
from transferd.sources.postgres import listing, preflight
from transferd.sources.postgres.conninfo import ConnInfo
from transferd.sources.postgres.listing import Table
from transferd.sources.postgres.slot import (
    ReplicationStream,
    drop_slot,
    publication_name,
    slot_name,
)
from transferd.sources.postgres.snapshot import SnapshotHolder, locks_released, quote_literal
from transferd.sources.postgres.source import PgOptions

log = logging.getLogger(__name__)


@dataclass
class Setup:
    stream: ReplicationStream
    holder: SnapshotHolder
    slot: str
    publication: str
    consistent_lsn: int
    snapshot: str
    """The snapshot exported again by the holder: the one the copy adopts."""
    tables: list[Table]


async def open_slot(
    info: ConnInfo,
    sql: asyncpg.Connection,
    job: str,
    pg: PgOptions,
    publication: str | None,
    fs: FollowState,
) -> Setup:
    slot = slot_name(job)
    old = fs.get("slot")
    for name in {slot, old} - {None}:
        assert name is not None  # noqa: S101
        if await drop_slot(sql, name):
            log.info("dropped replication slot %s of an earlier run (its snapshot is gone)", name)
    tables = await listing.list_tables(sql, pg.selection)
    pf = await preflight.check(
        sql, tables, slot=slot, publication=publication,
        with_large_objects=pg.selection.with_large_objects,
    )  # fmt: skip
    for what, fix in pf.warnings:
        log.warning("%s (%s)", what, fix)
    pf.raise_if_failed(info.server)
    pub = publication or publication_name(job)
    if publication is None:
        names = ", ".join(t.qualified for t in sorted(tables, key=lambda t: (t.schema, t.name)))
        await sql.execute(f'DROP PUBLICATION IF EXISTS "{pub}"')
        await sql.execute(f'CREATE PUBLICATION "{pub}"' + (f" FOR TABLE {names}" if names else ""))
        fs.set(publication=pub, created_publication=1)
    else:
        fs.set(publication=pub, created_publication=0)
    stream = ReplicationStream(info, slot, pub)
    await stream.connect()
    try:
        consistent, exported = await stream.create_slot()
        fs.set(slot=slot, phase="copy")
        holder = await SnapshotHolder.open(info, exported)
        try:
            again = str(await holder.conn.fetchval("SELECT pg_export_snapshot()"))
            async with locks_released(holder.conn):
                snapped = await listing.list_tables(holder.conn, pg.selection)
            published = {
                (r["schemaname"], r["tablename"])
                for r in await sql.fetch(
                    "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1",
                    pub,
                )
            }
            missing = [t.display for t in snapped if (t.schema, t.name) not in published]
            if missing:
                raise SourceError(
                    f"tables {', '.join(missing[:5])} are in the snapshot but not in publication "
                    f"{pub}: created while the follow started",
                    hint="run the same send again"
                    if publication is None
                    else f"ALTER PUBLICATION {pub} ADD TABLE …, then run the same send again",
                )
            fs.clear_pending()
            fs.set(
                consistent_lsn=_lsn(consistent),
                tables=json.dumps([{"oid": t.oid, "schema": t.schema, "name": t.name,
                                    "columns": [c.name for c in t.columns]} for t in snapped]),
            )  # fmt: skip
        except BaseException:
            await holder.close()
            raise
    except BaseException:
        await stream.close()
        raise
    stream.start(consistent, 0)
    return Setup(stream, holder, slot, pub, consistent, again, snapped)


def _lsn(value: int) -> str:
    from transferd.core.pgoutput import lsn_text

    return lsn_text(value)


async def sequences_now(sql: asyncpg.Connection, pg: PgOptions) -> tuple[bytes, int]:
    """The sequences' values now, as ``sequences.sql`` lines (POSTGRESQL.md §3), and how many."""
    async with sql.transaction(isolation="repeatable_read", readonly=True):
        seqs = await listing.list_sequences(sql, pg.selection)
        values = await listing.sequence_values(sql, seqs)
    lines = [
        f"-- transferd: the values of {len(values)} sequences at the cut-over, read after "
        "every change before it.\n"
    ]
    for seq, last, called in values:
        lines.append(
            f"SELECT pg_catalog.setval({quote_literal(seq.qualified)}, {last}, "
            f"{'true' if called else 'false'});\n"
        )
    return "".join(lines).encode(), len(values)
