"""The PostgreSQL source's pure parts: connection strings, passwords, patterns, paths, ranges."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from transferd.errors import ConfigError
from transferd.sources.open import is_postgres
from transferd.sources.postgres import conninfo
from transferd.sources.postgres.copy import range_count, range_sql
from transferd.sources.postgres.listing import Column, Selection, Table, pattern_regex
from transferd.sources.postgres.source import path_part
from transferd.verify.postgresql import parse_selection


@pytest.fixture(autouse=True)
def _no_pg_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)


def test_a_url_gives_every_part_and_hides_the_password() -> None:
    info = conninfo.parse("postgresql://copier:p%40ss%3Aw@db.example:6543/snds?sslmode=require")
    assert (info.host, info.port, info.user, info.dbname) == ("db.example", 6543, "copier", "snds")
    assert info.password == "p@ss:w"  # noqa: S105 - the test's own password
    assert info.options == {"sslmode": "require"}
    assert info.description == "postgresql://copier@db.example:6543/snds"
    assert "p@ss" not in repr(info) + info.libpq_string()
    assert info.tool_env({})["PGPASSWORD"] == "p@ss:w"


def test_a_key_value_string_with_quotes() -> None:
    info = conninfo.parse("host=h port=5433 user='o\\'neil' dbname='my db' password=x")
    assert (info.host, info.port, info.user, info.dbname, info.password) == (
        "h", 5433, "o'neil", "my db", "x"
    )  # fmt: skip
    assert "dbname='my db'" in info.libpq_string()
    assert "password" not in info.libpq_string()


def test_defaults_come_from_the_environment_as_libpq_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "envhost")
    monkeypatch.setenv("PGUSER", "envuser")
    monkeypatch.setenv("PGPASSWORD", "envpw")
    info = conninfo.parse("postgresql:///")
    assert (info.host, info.port, info.user, info.dbname) == ("envhost", 5432, "envuser", "envuser")
    assert info.password == "envpw"  # noqa: S105 - the test's own password
    # the tools get our resolved values, not the caller's variables pointing elsewhere
    env = info.tool_env({"PGHOST": "elsewhere", "PATH": "/bin"})
    assert "PGHOST" not in env
    assert env["PATH"] == "/bin"


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ("postgresql://u:secret@h/db", "postgresql://u:****@h/db"),
        ("postgresql://u@h/db?password=secret", "postgresql://u@h/db?password=****"),
        ("host=h password='se cret' dbname=d", "host=h password=**** dbname=d"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_mask_replaces_any_password(spec: str, shown: str) -> None:
    assert conninfo.mask(spec) == shown


def test_a_password_file_must_be_private(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_text("s3cret\nignored\n")
    f.chmod(0o644)
    with pytest.raises(ConfigError, match="can be read by other users") as info:
        conninfo.parse("postgresql://u@h/db", f)
    assert info.value.hint == f"run: chmod 600 {f}"
    f.chmod(0o600)
    assert conninfo.parse("postgresql://u:inurl@h/db", f).password == "s3cret"  # noqa: S105
    f.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        conninfo.parse("postgresql://u@h/db", f)


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("postgresql://u@h:notaport/db", "not a PostgreSQL URL"),
        ("host=h port=x", "bad port"),
        ("host=h dbname='unterminated", "unterminated quote"),
        ("postgresql://u@a,b/db", "several hosts"),
    ],
)
def test_bad_connection_strings(spec: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        conninfo.parse(spec)


def test_what_counts_as_a_postgres_source() -> None:
    assert is_postgres("postgresql://h/db")
    assert is_postgres("postgres://h/db")
    assert is_postgres("host=h dbname=d")
    assert not is_postgres("/srv/exports")
    assert not is_postgres("exports/host=1")


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("pgbench_*", [("public", "pgbench_accounts")], [("public", "Pgbench_x")]),
        ("PGBENCH_?ellers", [("public", "pgbench_tellers")], [("public", "pgbench_t")]),
        ('"Mixed Case"', [("s", "Mixed Case")], [("s", "mixed case")]),
        ('"a.b*"', [("s", "a.b*")], [("s", "a.bbb")]),
        ("s1.t*", [("s1", "t1")], [("s2", "t1")]),
        ('"Odd Schema/x".*', [("Odd Schema/x", "anything")], [("odd schema/x", "t")]),
        ("price$", [("s", "price$")], [("s", "price")]),
        ("t[0-9]", [("s", "t1")], [("s", "tx")]),
    ],
)
def test_patterns_follow_psql(
    pattern: str, matches: list[tuple[str, str]], misses: list[tuple[str, str]]
) -> None:
    schema_rx, name_rx = pattern_regex(pattern)

    def hit(schema: str, name: str) -> bool:
        schema_ok = schema_rx is None or re.fullmatch(schema_rx, schema) is not None
        return schema_ok and re.fullmatch(name_rx, name) is not None

    assert all(hit(*m) for m in matches)
    assert not any(hit(*m) for m in misses)


def test_names_become_reversible_path_parts() -> None:
    assert path_part("plain") == "plain"
    assert path_part("a/b%c") == "a%2Fb%25c"
    assert path_part(".") == "%2E"
    assert path_part("..") == "%2E%2E"
    assert path_part("...") == "..."  # not a special component


def test_ranges_cover_the_table_and_the_last_one_is_open() -> None:
    t = Table(1, "s", "t", 1, pages=10, size=0, columns=(Column("a", "int"), Column('b"', "text")))
    assert range_count(t, 4) == 3
    sqls = list(range_sql(t, 4))
    assert sqls[0] == (
        'SELECT "a", "b""" FROM ONLY "s"."t" WHERE ctid >= \'(0,0)\'::tid AND ctid < \'(4,0)\'::tid'
    )
    assert sqls[2].endswith("WHERE ctid >= '(8,0)'::tid")
    assert list(range_sql(t, 10)) == ['SELECT "a", "b""" FROM ONLY "s"."t"']
    empty = Table(2, "s", "e", 2, pages=0, size=0)
    assert list(range_sql(empty, 4)) == ['SELECT  FROM ONLY "s"."e"']


def test_a_selection_reads_back_from_the_catalog() -> None:
    sel = Selection(include_schema=("a b",), exclude_table=("x'y",), exclude_table_data=("big",),
                    large_objects=False)  # fmt: skip
    import shlex

    assert parse_selection(shlex.join(sel.options())) == sel
    assert parse_selection("").with_large_objects
