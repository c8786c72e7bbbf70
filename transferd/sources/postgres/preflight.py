"""Before a follow starts: every prerequisite of logical decoding checked, each missing one named
with its fix, all at once (an operator fixes them in one visit, not one per failed run).

What is checked, and why each matters:

- ``wal_level = logical``: without it the server writes no WAL a slot can decode;
- a free replication slot and a free WAL sender (``max_replication_slots``, ``max_wal_senders``);
- the role may replicate (``REPLICATION`` or superuser);
- each selected table can publish its ``UPDATE`` and ``DELETE``: a table without a primary key
  (nor ``REPLICA IDENTITY FULL`` or ``USING INDEX``) in a publication makes the *source* refuse
  the application's updates ("cannot update table … because it does not have a replica
  identity"), so it is refused here, with ``REPLICA IDENTITY FULL`` as the fix;
- unlogged tables write no WAL: their changes cannot be followed;
- large objects are not decoded: their changes after the snapshot would be lost silently;
- the publication: the operator's (``--publication``) must publish insert, update, delete and
  truncate of every selected table; without one, transferd creates its own, which needs the
  role to own the tables (or be superuser) and to have CREATE on the database.

Warnings, not refusals: ``max_slot_wal_keep_size = -1`` (a stalled slot may fill the source's
disk: watch ``slot_retained_wal_bytes``), and DDL, which logical decoding does not carry (a
table whose columns change stops the follow).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from transferd.errors import ConfigError
from transferd.sources.postgres.listing import Table


@dataclass
class Preflight:
    problems: list[tuple[str, str]] = field(default_factory=list)
    """(what is missing, its fix)."""
    warnings: list[tuple[str, str]] = field(default_factory=list)
    owns_all: bool = False

    def need(self, what: str, fix: str) -> None:
        self.problems.append((what, fix))

    def raise_if_failed(self, server: str) -> None:
        if not self.problems:
            return
        lines = [f"{what}: {fix}" for what, fix in self.problems]
        raise ConfigError(
            f"{server} is not ready to be followed: {len(self.problems)} prerequisite"
            f"{'s' if len(self.problems) != 1 else ''} missing",
            hint="\n".join(lines),
            server=server,
            problems=lines,
        )


_SERVER = """
SELECT current_setting('wal_level') AS wal_level,
       current_setting('max_replication_slots')::int AS max_slots,
       (SELECT count(*) FROM pg_replication_slots) AS slots,
       (SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1) AS ours,
       current_setting('max_wal_senders')::int AS max_senders,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender') AS senders,
       (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user) AS repl,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       has_database_privilege(current_database(), 'CREATE') AS can_create,
       current_setting('max_slot_wal_keep_size') AS keep_size,
       current_setting('wal_sender_timeout') AS sender_timeout,
       (SELECT count(*) FROM pg_largeobject_metadata) AS large_objects
"""

_TABLES = """
SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name, c.relpersistence::text AS persistence,
       c.relreplident::text AS identity,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS pk,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) AS idx,
       pg_has_role(c.relowner, 'USAGE') AS owned
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = ANY($1::oid[])
 ORDER BY 2
"""

_PUBLICATION = """
SELECT p.pubinsert AND p.pubupdate AND p.pubdelete AND p.pubtruncate AS all_kinds,
       p.pubviaroot AS via_root,
       ARRAY(SELECT format('%I.%I', schemaname, tablename) FROM pg_publication_tables t
              WHERE t.pubname = p.pubname) AS tables
  FROM pg_publication p WHERE p.pubname = $1
"""


async def check(
    conn: asyncpg.Connection,
    tables: list[Table],
    *,
    slot: str,
    publication: str | None,
    with_large_objects: bool,
    slot_exists_ok: bool = False,
) -> Preflight:
    """Every prerequisite, on a connection to the source (outside the snapshot)."""
    pf = Preflight()
    s = await conn.fetchrow(_SERVER, slot)
    assert s is not None  # noqa: S101 - a SELECT without FROM returns one row
    if s["wal_level"] != "logical":
        pf.need(f"wal_level is {s['wal_level']}",
                "ALTER SYSTEM SET wal_level = logical; then restart the server")  # fmt: skip
    ours = int(s["ours"])
    if s["slots"] - ours >= s["max_slots"] and not (ours and slot_exists_ok):
        pf.need(f"no free replication slot ({s['slots']} of max_replication_slots "
                f"{s['max_slots']} used)",
                f"ALTER SYSTEM SET max_replication_slots = {s['max_slots'] + 1}; then restart "
                "the server (or drop a slot no longer used)")  # fmt: skip
    if s["senders"] >= s["max_senders"]:
        pf.need(f"no free WAL sender ({s['senders']} of max_wal_senders {s['max_senders']})",
                f"ALTER SYSTEM SET max_wal_senders = {s['max_senders'] + 1}; then restart "
                "the server")  # fmt: skip
    user = await conn.fetchval("SELECT current_user")
    if not s["repl"]:
        pf.need(f"role {user} may not replicate", f"ALTER ROLE {user} REPLICATION")
    if with_large_objects and s["large_objects"]:
        pf.need(f"{s['large_objects']} large objects, whose changes logical decoding does not "
                "carry", "send with --no-large-objects, or keep them in bytea columns")  # fmt: skip
    rows = await conn.fetch(_TABLES, [t.oid for t in tables])
    for r in rows:
        name = r["name"]
        if r["persistence"] == "u":
            pf.need(f"table {name} is unlogged: its changes are not in the WAL",
                    f"ALTER TABLE {name} SET LOGGED")  # fmt: skip
        elif r["identity"] == "n" or (r["identity"] == "d" and not r["pk"]):
            why = "has REPLICA IDENTITY NOTHING" if r["identity"] == "n" else "has no primary key"
            pf.need(f"table {name} {why}: the publication would make the source refuse its "
                    "UPDATE and DELETE",
                    f"ALTER TABLE {name} REPLICA IDENTITY FULL (or add a primary key)")  # fmt: skip
        elif r["identity"] == "i" and not r["idx"]:
            pf.need(f"table {name}: its replica identity index is gone",
                    f"ALTER TABLE {name} REPLICA IDENTITY FULL (or USING INDEX …)")  # fmt: skip
    pf.owns_all = bool(s["superuser"]) or all(r["owned"] for r in rows)
    if publication is None:
        if not pf.owns_all:
            others = [r["name"] for r in rows if not r["owned"]]
            pf.need(f"role {user} does not own {', '.join(others[:5])}"
                    f"{' …' if len(others) > 5 else ''}, so it cannot create their publication",
                    "have the owner run CREATE PUBLICATION name FOR TABLE …, then send with "
                    "--publication name")  # fmt: skip
        elif not s["can_create"] and not s["superuser"]:
            pf.need(f"role {user} may not create a publication in this database",
                    f"GRANT CREATE ON DATABASE {await conn.fetchval('SELECT current_database()')}"
                    f" TO {user}, or send with --publication NAME")  # fmt: skip
    else:
        _check_publication(pf, await conn.fetchrow(_PUBLICATION, publication), publication, rows)
    if s["keep_size"] == "-1":
        pf.warnings.append((
            "max_slot_wal_keep_size is -1: a follow that stalls keeps every WAL file from then on",
            "watch slot_retained_wal_bytes (jobs status, metrics); ALTER SYSTEM SET "
            "max_slot_wal_keep_size = '100GB' bounds it",
        ))  # fmt: skip
    if s["sender_timeout"] == "0":
        pf.warnings.append((
            "wal_sender_timeout is 0: a lost follow connection is never noticed by the server",
            "ALTER SYSTEM SET wal_sender_timeout = '60s'",
        ))  # fmt: skip
    pf.warnings.append(
        (
            "DDL is not carried by logical decoding: a table whose columns change stops the follow",
            "make schema changes after the cut-over, on the new database",
        )
    )
    return pf


def _check_publication(
    pf: Preflight, row: asyncpg.Record | None, name: str, tables: list[asyncpg.Record]
) -> None:
    if row is None:
        pf.need(f"publication {name} does not exist",
                f"CREATE PUBLICATION {name} FOR TABLE … (the tables to copy)")  # fmt: skip
        return
    if not row["all_kinds"]:
        kinds = "insert, update, delete, truncate"
        pf.need(f"publication {name} does not publish every kind of change",
                f"ALTER PUBLICATION {name} SET (publish = '{kinds}')")  # fmt: skip
    if row["via_root"]:
        pf.need(f"publication {name} publishes partitions as their root",
                f"ALTER PUBLICATION {name} SET (publish_via_partition_root = false)")  # fmt: skip
    published = set(row["tables"])
    missing = [r["name"] for r in tables if r["name"] not in published]
    if missing:
        pf.need(f"publication {name} lacks {len(missing)} of the tables to copy "
                f"({', '.join(missing[:5])}{' …' if len(missing) > 5 else ''})",
                f"ALTER PUBLICATION {name} ADD TABLE {', '.join(missing)}")  # fmt: skip
