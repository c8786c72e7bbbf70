"""``transferd restore --to postgresql://…``: the command-line side of restore/postgresql.py.

restore.py parses the common options (store, job, identity, sender) and hands over here when
the target is a database rather than a directory.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import TYPE_CHECKING

from transferd.cli.output import JSONValue, Output
from transferd.cli.pgargs import DEFAULT_JOBS, add_password_file
from transferd.core.keys import RecipientIdentity, SenderPublicKey
from transferd.errors import ConfigError
from transferd.stores.base import Store
from transferd.util.extras import needs
from transferd.util.runtime import run as run_async
from transferd.util.units import human_bytes, parse_size

if TYPE_CHECKING:
    from transferd.restore.postgresql import PgRestoreProgress

PROGRESS_INTERVAL = 5.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("PostgreSQL targets", "when restoring with --to postgresql://…")
    g.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"tables loaded at once (default {DEFAULT_JOBS})",
    )
    g.add_argument(
        "--split-tables-larger-than",
        type=parse_size,
        metavar="SIZE",
        help="load a table larger than SIZE (e.g. 10G) by several COPYs at once, one more per "
        "SIZE, for a target with cores to spare: one COPY runs on one core; its rows are then "
        "stored in another order (verify --against still proves them). Default: one COPY per "
        "table",
    )
    g.add_argument(
        "--until-lsn",
        metavar="LSN",
        help="of a follow copy, apply the changes only up to LSN (e.g. 0/23CBE120): the "
        "database as it was then; default: up to the newest (the cut-over)",
    )
    add_password_file(g, "the target database")


def run(
    args: argparse.Namespace,
    out: Output,
    store: Store,
    identity: RecipientIdentity,
    sender: SenderPublicKey | None,
) -> int:
    # imported here: asyncpg takes 85 ms to import, which every other command would pay
    with needs("postgres"):
        from transferd.restore.postgresql import PgRestoreProgress, PgRestoreResult, restore_pg
        from transferd.sources.postgres import conninfo

    if args.jobs < 1:
        raise ConfigError("--jobs must be 1 or more")
    if args.split_tables_larger_than is not None and args.split_tables_larger_than < 1 << 20:
        raise ConfigError("--split-tables-larger-than must be at least 1M")
    target = conninfo.parse(args.to, args.password_file)
    progress = PgRestoreProgress()
    until = None
    if args.until_lsn is not None:
        from transferd.core.pgoutput import parse_lsn
        from transferd.errors import FormatError

        try:
            until = parse_lsn(args.until_lsn.upper(), "--until-lsn")
        except FormatError as e:
            raise ConfigError(e.message, hint="an LSN is written like 0/23CBE120") from None

    def warn(message: str, hint: str | None) -> None:
        out.warning(message, hint=hint)

    async def report() -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            out.progress({"bytes": progress.bytes, "rows": progress.rows}, _describe(progress))

    async def main() -> PgRestoreResult:
        ticker = None if args.quiet else asyncio.create_task(report())
        try:
            return await restore_pg(
                store=store, job=args.job, identity=identity, target=target, sender=sender,
                sequence=args.sequence, force=args.force, jobs=args.jobs,
                split_after=args.split_tables_larger_than,
                workers=max(0, args.workers), progress=progress, warn=warn,
                until_lsn=until, resume=args.resume,
            )  # fmt: skip
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
            await store.close()

    result = run_async(main())
    body = result.manifest.body
    source = result.source or {}
    summary: dict[str, JSONValue] = {
        "job": result.job,
        "sequence": body.sequence,
        "manifest_sha256": result.manifest.digest,
        "sender": body.sender,
        "sender_checked": result.signer_checked,
        "to": target.description,
        "snapshot": str(source.get("snapshot", "")),
        "snapshot_time": str(source.get("snapshot_time", "")),
        "tables": progress.tables,
        "rows": progress.rows,
        "large_objects": progress.large_objects,
        "bytes": progress.bytes,
        "seconds": round(result.seconds, 3),
    }
    c = progress.changes
    if body.changes is not None:
        from transferd.core.pgoutput import lsn_text

        summary.update(change_segments=c.segments, change_transactions=c.transactions,
                       changes=c.changes, applied_lsn=lsn_text(c.applied_lsn))  # fmt: skip
    lines = [
        f"job {result.job}: manifest {body.sequence} (snapshot {summary['snapshot']} of "
        f"{summary['snapshot_time']}) restored into {target.description}",
        f"  {_describe(progress)}, {result.seconds:.1f} s",
    ]
    if body.changes is not None:
        lines.append(
            f"  then {c.transactions:,} transactions ({c.changes:,} changes) of "
            f"{c.segments:,} change segments, up to LSN {summary['applied_lsn']}"
        )
    out.result(summary, lines)
    return 0


def _describe(p: PgRestoreProgress) -> str:
    elapsed = max(time.monotonic() - p.started, 1e-6)
    return (
        f"{p.tables:,} tables, {p.rows:,} rows, {human_bytes(p.bytes)} "
        f"({human_bytes(p.bytes / elapsed)}/s)"
    )
