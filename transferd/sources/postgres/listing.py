"""What a PostgreSQL copy holds: the tables, sequences and large objects the snapshot shows, chosen
with pg_dump's include and exclude patterns.

The same patterns are handed to ``pg_dump`` for the schema, so data and schema agree. Patterns
follow psql's rules (``patternToSQLRegex`` in PostgreSQL's fe_utils): ``*`` and ``?`` are
wildcards, ``.`` separates schema from name, unquoted letters are folded to lower case, double
quotes keep case and make every character literal, and other regular-expression characters keep
their meaning. An unqualified table pattern matches tables visible in the role's search path, as in
pg_dump. These queries run inside the snapshot, so they list what it shows.

What is copied, and why:

- ordinary tables (``relkind 'r'``), including each leaf partition of a partitioned table: a
  partitioned parent holds no rows, and restoring each leaf into its own table gives back exactly
  the rows and their partitions (``COPY`` into the parent would re-route rows, and fail if the
  partition bounds were edited meanwhile);
- no foreign tables (their rows live elsewhere), views or materialized views (post-data
  refreshes them), temporary tables, or tables that belong to an extension (``CREATE EXTENSION``
  creates and fills them);
- columns by name, without generated or dropped ones: ``COPY`` cannot write generated columns, and
  a column added after the snapshot is not read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import asyncpg

from transferd.sources.postgres.snapshot import quote_ident

_REGEX_SPECIAL = set("|*+?()[]{}.^$\\")


@dataclass(frozen=True)
class Selection:
    include_schema: tuple[str, ...] = ()
    exclude_schema: tuple[str, ...] = ()
    include_table: tuple[str, ...] = ()
    exclude_table: tuple[str, ...] = ()
    exclude_table_data: tuple[str, ...] = ()
    large_objects: bool | None = None
    """None: pg_dump's rule (copied unless a schema or table is selected with an include)."""
    no_owner: bool = False
    """pg_dump --no-owner: the schema names no owner; restored objects belong to the restorer."""
    no_privileges: bool = False
    """pg_dump --no-privileges: the schema carries no GRANT or REVOKE."""

    @property
    def with_large_objects(self) -> bool:
        if self.large_objects is not None:
            return self.large_objects
        return not (self.include_schema or self.include_table)

    def options(self) -> list[str]:
        """The selection as command-line options (pg_dump's, and --exclude-table-data)."""
        return [
            *self.pg_dump_args(),
            *(f"--exclude-table-data={p}" for p in self.exclude_table_data),
        ]

    def pg_dump_args(self) -> list[str]:
        args: list[str] = []
        for flag, patterns in (("--schema", self.include_schema),
                               ("--exclude-schema", self.exclude_schema),
                               ("--table", self.include_table),
                               ("--exclude-table", self.exclude_table)):  # fmt: skip
            args.extend(f"{flag}={p}" for p in patterns)
        args.append("--blobs" if self.with_large_objects else "--no-blobs")
        args += ["--no-owner"] if self.no_owner else []
        args += ["--no-privileges"] if self.no_privileges else []
        return args


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    """``format_type``: the type as SQL spells it (``numeric(10,2)``, ``public.mood[]``)."""


@dataclass(frozen=True)
class Table:
    oid: int
    schema: str
    name: str
    relfilenode: int
    pages: int
    """Heap pages now (not in the snapshot): to plan ranges, never to bound them."""
    size: int
    """pg_table_size: heap and TOAST, for "largest first" and the progress estimate."""
    columns: tuple[Column, ...] = field(default=())

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def display(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class SequenceRef:
    oid: int
    schema: str
    name: str

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


def pattern_regex(pattern: str) -> tuple[str | None, str]:
    """(schema regex or None, name regex) of a psql pattern, each anchored ``^(…)$``."""
    parts: list[list[str]] = [[]]
    quoted = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == '"':
            if quoted and pattern[i + 1 : i + 2] == '"':
                parts[-1].append('"')
                i += 1
            else:
                quoted = not quoted
        elif quoted:
            parts[-1].append("\\" + c if c in _REGEX_SPECIAL else c)
        elif c == ".":
            parts.append([])
        elif c == "*":
            parts[-1].append(".*")
        elif c == "?":
            parts[-1].append(".")
        elif c == "$":
            parts[-1].append("\\$")
        else:
            parts[-1].append(c.lower() if c.isascii() else c)
        i += 1
    regexes = ["^(" + "".join(p) + ")$" for p in parts]
    if len(regexes) == 1:
        return None, regexes[0]
    return regexes[-2], regexes[-1]


class _Where:
    """WHERE clauses over a relation ``c`` in namespace ``n`` (aliases given), with numbered
    parameters shared by every clause built from one instance."""

    def __init__(self) -> None:
        self.args: list[object] = []

    def arg(self, value: object) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def any_of(self, patterns: Sequence[str], *, tables: bool, c: str = "c", n: str = "n") -> str:
        """SQL true when the relation matches one of the patterns (schema patterns unless
        ``tables``)."""
        terms = []
        for p in patterns:
            schema_rx, name_rx = pattern_regex(p)
            if not tables:
                terms.append(f"{n}.nspname ~ {self.arg(name_rx)}")
            elif schema_rx is None:
                terms.append(
                    f"({c}.relname ~ {self.arg(name_rx)} AND pg_table_is_visible({c}.oid))"
                )
            else:
                terms.append(
                    f"({n}.nspname ~ {self.arg(schema_rx)} AND {c}.relname ~ {self.arg(name_rx)})"
                )
        return "(" + " OR ".join(terms) + ")" if terms else "false"

    def select(self, sel: Selection, *, c: str = "c", n: str = "n") -> str:
        w = ["true"]
        if sel.include_schema:
            w.append(self.any_of(sel.include_schema, tables=False, c=c, n=n))
        if sel.exclude_schema:
            w.append("NOT " + self.any_of(sel.exclude_schema, tables=False, c=c, n=n))
        if sel.include_table:
            w.append(self.any_of(sel.include_table, tables=True, c=c, n=n))
        if sel.exclude_table:
            w.append("NOT " + self.any_of(sel.exclude_table, tables=True, c=c, n=n))
        return " AND ".join(w)


_USER_RELATION = """
    n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
    AND c.relpersistence <> 't'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                    AND d.objid = c.oid AND d.deptype = 'e')
"""


async def list_tables(conn: asyncpg.Connection, sel: Selection) -> list[Table]:
    """The tables whose rows are copied, largest first (then by name, so runs agree)."""
    where = _Where()
    cond = _USER_RELATION + " AND " + where.select(sel)
    if sel.exclude_table_data:
        cond += " AND NOT " + where.any_of(sel.exclude_table_data, tables=True)
    rows = await conn.fetch(
        f"""SELECT c.oid, n.nspname, c.relname, c.relfilenode,
                   coalesce(pg_relation_size(c.oid), 0) / current_setting('block_size')::int
                       AS pages,
                   coalesce(pg_table_size(c.oid), 0) AS size
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND {cond}""",  # noqa: S608 - clauses are ours, values are $n
        *where.args,
    )
    columns = await _columns(conn, [r["oid"] for r in rows])
    tables = [
        Table(
            oid=int(r["oid"]), schema=r["nspname"], name=r["relname"],
            relfilenode=int(r["relfilenode"]), pages=int(r["pages"]), size=int(r["size"]),
            columns=tuple(columns.get(int(r["oid"]), ())),
        )
        for r in rows
    ]  # fmt: skip
    tables.sort(key=lambda t: (-t.size, t.schema, t.name))
    return tables


async def _columns(conn: asyncpg.Connection, oids: list[int]) -> dict[int, list[Column]]:
    rows = await conn.fetch(
        """SELECT attrelid, attname, format_type(atttypid, atttypmod) AS type
             FROM pg_attribute
            WHERE attrelid = ANY($1::oid[]) AND attnum > 0 AND NOT attisdropped
              AND attgenerated = ''
            ORDER BY attrelid, attnum""",
        oids,
    )
    out: dict[int, list[Column]] = {}
    for r in rows:
        out.setdefault(int(r["attrelid"]), []).append(Column(r["attname"], r["type"]))
    return out


async def list_sequences(conn: asyncpg.Connection, sel: Selection) -> list[SequenceRef]:
    """Sequences pg_dump would define: those the patterns select, and those owned by (serial or
    identity columns of) a selected table."""
    where = _Where()
    own = where.select(sel)
    owner_cond = where.select(sel, c="t", n="tn")
    rows = await conn.fetch(
        f"""SELECT c.oid, n.nspname, c.relname
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'S' AND {_USER_RELATION}
               AND (({own}) OR EXISTS (
                    SELECT 1 FROM pg_depend d
                      JOIN pg_class t ON t.oid = d.refobjid
                      JOIN pg_namespace tn ON tn.oid = t.relnamespace
                     WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                       AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
                       AND {owner_cond}))
             ORDER BY n.nspname, c.relname""",  # noqa: S608 - clauses are ours, values are $n
        *where.args,
    )
    return [SequenceRef(int(r["oid"]), r["nspname"], r["relname"]) for r in rows]


async def sequence_values(
    conn: asyncpg.Connection, seqs: Sequence[SequenceRef]
) -> list[tuple[SequenceRef, int, bool]]:
    """(sequence, last_value, is_called) of each. Sequences are not transactional: this is their
    state now, as pg_dump reads it, not in the snapshot."""
    out: list[tuple[SequenceRef, int, bool]] = []
    for start in range(0, len(seqs), 200):
        batch = seqs[start : start + 200]
        query = " UNION ALL ".join(
            f"SELECT {i} AS i, last_value, is_called FROM {s.qualified}"  # noqa: S608
            for i, s in enumerate(batch)
        )
        rows = await conn.fetch(query)
        out.extend((batch[r["i"]], int(r["last_value"]), bool(r["is_called"])) for r in rows)
    out.sort(key=lambda v: (v[0].schema, v[0].name))
    return out


async def large_object_oids(
    conn: asyncpg.Connection, batch: int = 1000
) -> AsyncIterator[list[int]]:
    """Every large object's oid, ascending, ``batch`` at a time (there may be millions)."""
    last = 0  # InvalidOid: no object has it
    while True:
        rows = await conn.fetch(
            "SELECT oid FROM pg_largeobject_metadata WHERE oid > $1::oid ORDER BY oid LIMIT $2",
            last,
            batch,
        )
        if not rows:
            return
        oids = [int(r["oid"]) for r in rows]
        last = oids[-1]
        yield oids
