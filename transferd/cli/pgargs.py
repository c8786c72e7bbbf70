"""Command-line options of PostgreSQL sources and targets, shared by send, restore and verify.

The selection options are pg_dump's, with its short letters, so an operator's habits carry over:
``-n``/``-N`` include or exclude schemas, ``-t``/``-T`` tables, ``--exclude-table-data``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from transferd.errors import ConfigError
from transferd.sources.open import is_postgres
from transferd.util.extras import needs

if TYPE_CHECKING:
    from transferd.sources.postgres.source import PgOptions

DEFAULT_JOBS = 4


def add_password_file(p: argparse.ArgumentParser | argparse._ArgumentGroup, what: str) -> None:
    p.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help=f"read the password of {what} from the first line of FILE (mode 0600); otherwise "
        "from the URL, PGPASSWORD or the passfile (~/.pgpass); never shown",
    )


def add_source_arguments(p: argparse.ArgumentParser, *, daemon: bool = False) -> None:
    """The options of a PostgreSQL source; ``daemon``: for a daemon job, which takes and holds
    its own snapshot and reads passwords from its PGPASSFILE (no --snapshot, --password-file)."""
    g = p.add_argument_group(
        "PostgreSQL sources",
        "when SOURCE is postgresql://USER@HOST:PORT/DB (or a libpq key=value string)",
    )
    if not daemon:
        g.add_argument(
            "--snapshot",
            metavar="ID",
            help="copy the snapshot exported by another session (pg_export_snapshot()), which "
            "must stay open until the copy has started; default: take a new one",
        )
    g.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help=f"connections reading tables at once (default {DEFAULT_JOBS})",
    )
    for short, long, what in (
        ("-n", "--include-schema", "copy only schemas matching PATTERN"),
        ("-N", "--exclude-schema", "do not copy schemas matching PATTERN"),
        ("-t", "--include-table", "copy only tables matching PATTERN"),
        ("-T", "--exclude-table", "do not copy tables matching PATTERN"),
    ):
        g.add_argument(
            short, long, action="append", default=[], metavar="PATTERN",
            help=f"{what} (pg_dump's patterns; repeatable)",
        )  # fmt: skip
    g.add_argument(
        "--exclude-table-data",
        action="append",
        default=[],
        metavar="PATTERN",
        help="copy the definition but not the rows of tables matching PATTERN",
    )
    g.add_argument(
        "--no-large-objects",
        action="store_true",
        help="do not copy large objects (copied by default unless -n or -t is given)",
    )
    g.add_argument(
        "--no-owner",
        action="store_true",
        help="leave out who owns each object (pg_dump --no-owner): the restored objects belong "
        "to the role that restores them, so the target cluster needs none of the source's roles",
    )
    g.add_argument(
        "--no-privileges",
        action="store_true",
        help="leave out grants (pg_dump --no-privileges), e.g. to roles of the source's cloud",
    )
    if not daemon:
        add_password_file(g, "the source")


def source_options(args: argparse.Namespace) -> PgOptions | None:
    """The PostgreSQL options given; ConfigError when they are given for another source."""
    given = [
        name
        for name, value in (
            ("--snapshot", getattr(args, "snapshot", None)), ("--jobs", args.jobs),
            ("--include-schema", args.include_schema), ("--exclude-schema", args.exclude_schema),
            ("--include-table", args.include_table), ("--exclude-table", args.exclude_table),
            ("--exclude-table-data", args.exclude_table_data),
            ("--no-large-objects", args.no_large_objects),
            ("--no-owner", args.no_owner), ("--no-privileges", args.no_privileges),
            ("--password-file", getattr(args, "password_file", None)),
        )
        if value
    ]  # fmt: skip
    if not is_postgres(args.source):
        if given:
            raise ConfigError(f"{given[0]} applies to PostgreSQL sources (postgresql://…) only")
        return None
    # imported here, for a database only: asyncpg takes 85 ms to import, and is an extra
    with needs("postgres"):
        from transferd.sources.postgres.listing import Selection
        from transferd.sources.postgres.source import PgOptions

    jobs = DEFAULT_JOBS if args.jobs is None else args.jobs
    if jobs < 1:
        raise ConfigError("--jobs must be 1 or more")
    selection = Selection(
        include_schema=tuple(args.include_schema),
        exclude_schema=tuple(args.exclude_schema),
        include_table=tuple(args.include_table),
        exclude_table=tuple(args.exclude_table),
        exclude_table_data=tuple(args.exclude_table_data),
        large_objects=False if args.no_large_objects else None,
        no_owner=args.no_owner,
        no_privileges=args.no_privileges,
    )
    return PgOptions(
        snapshot=getattr(args, "snapshot", None), jobs=jobs, selection=selection,
        password_file=getattr(args, "password_file", None),
    )  # fmt: skip
