"""What a database holds, measured independently of the code under test: each table's COPY text
(hash and rows), sequences, large objects, and its schema as ``pg_dump --schema-only`` prints it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

import asyncpg
import blake3

from tests.postgres.cluster import Cluster

SETTINGS = {
    "DateStyle": "ISO",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "synchronize_seqscans": "off",
}


@dataclass
class DbState:
    tables: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    """(schema, table) -> (rows, BLAKE3 of its COPY text)."""
    sequences: dict[str, tuple[int, bool]] = field(default_factory=dict)
    large_objects: dict[int, str] = field(default_factory=dict)
    schema: str = ""


async def measure(cluster: Cluster, db: str, snapshot: str | None = None) -> DbState:
    conn = await asyncpg.connect(cluster.url(db), server_settings=SETTINGS)
    try:
        await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        if snapshot is not None:
            await conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        state = DbState()
        rows = await conn.fetch(
            """SELECT n.nspname, c.relname, c.relkind::text AS relkind FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'S')
                  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                  AND n.nspname NOT LIKE 'pg_toast%'"""
        )
        for r in rows:
            schema, name = r["nspname"], r["relname"]
            qualified = '"' + schema.replace('"', '""') + '"."' + name.replace('"', '""') + '"'
            if r["relkind"] == "S":
                query = f"SELECT last_value, is_called FROM {qualified}"  # noqa: S608
                row = await conn.fetchrow(query)
                assert row is not None
                state.sequences[f"{schema}.{name}"] = (row[0], row[1])
                continue
            hasher = blake3.blake3()
            count = 0

            async def sink(data: bytes, hasher: blake3.blake3 = hasher) -> None:
                nonlocal count
                hasher.update(data)
                count += data.count(b"\n")

            await conn.copy_from_table(name, schema_name=schema, output=sink)
            state.tables[(schema, name)] = (count, hasher.hexdigest())
        for r in await conn.fetch("SELECT oid FROM pg_largeobject_metadata"):
            data = await conn.fetchval("SELECT lo_get($1)", r["oid"])
            state.large_objects[int(r["oid"])] = blake3.blake3(data).hexdigest()
    finally:
        await conn.close()
    state.schema = schema_of(cluster, db, snapshot)
    return state


def schema_of(cluster: Cluster, db: str, snapshot: str | None = None) -> str:
    """``pg_dump --schema-only``, without the random ``\\restrict`` keys of recent pg_dumps."""
    args = [cluster.tool("pg_dump"), "--schema-only", "-h", "127.0.0.1", "-p", str(cluster.port),
            "-U", "postgres", db]  # fmt: skip
    if snapshot is not None:
        args.append(f"--snapshot={snapshot}")
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout
    return "".join(
        line for line in out.splitlines(keepends=True)
        if not line.startswith(("\\restrict", "\\unrestrict"))
    )  # fmt: skip
