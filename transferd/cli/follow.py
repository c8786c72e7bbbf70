"""``transferd send postgresql://… --follow``: the command-line side of send/follow.py.

A follow runs until it is cut over. Three ways to cut over, none of them a signal:

- ``--cutover-at-end``: as soon as the copy has caught up with the source (for a source whose
  writes were stopped before the send, or a test);
- ``transferd send … --job NAME --cutover`` (the same command, the same ``--state``), from
  another terminal: it asks the running follow to cut over and waits for it to finish; when no
  follow of the job runs, it resumes the job itself and cuts over;
- ``transferd jobs cutover NAME`` for a job of the daemon.

The follow then prints one line, ``copy complete up to LSN …``, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from transferd.cli.output import JSONValue, Output
from transferd.cli.pgargs import source_options
from transferd.errors import EXIT_OK, ConfigError, TransferdError
from transferd.util.extras import needs
from transferd.util.units import human_bytes, parse_size

if TYPE_CHECKING:
    from transferd.send.compose import SendOptions
    from transferd.send.follow import FollowResult
    from transferd.send.followloop import FollowStatus

PROGRESS_INTERVAL = 5.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "PostgreSQL follow mode",
        "copy a live database in one snapshot, then keep the copy in step with its changes "
        "(logical replication) until a cut-over",
    )
    g.add_argument("--follow", action="store_true",
                   help="after the snapshot, follow the changes until a cut-over")  # fmt: skip
    g.add_argument("--publication", metavar="NAME",
                   help="carry the changes of this publication (created by the tables' owner); "
                   "default: transferd creates one for the selected tables")  # fmt: skip
    g.add_argument("--keep-slot", action="store_true",
                   help="keep the slot (and publication) after the cut-over")  # fmt: skip
    g.add_argument("--cutover-at-end", action="store_true",
                   help="cut over as soon as the copy has caught up with the source")  # fmt: skip
    g.add_argument("--cutover", action="store_true",
                   help="ask the running follow of --job to cut over, and wait for it (or "
                   "resume the job and cut over)")  # fmt: skip
    g.add_argument("--max-retained-wal", type=parse_size, default=16 * 1024**3, metavar="SIZE",
                   help="warn when the source keeps more WAL than SIZE for the slot (default "
                   "16G; 0: never)")  # fmt: skip


def wants_follow(args: argparse.Namespace) -> bool:
    given = args.follow or args.cutover or args.cutover_at_end or args.keep_slot
    if (given or args.publication) and not args.follow and not args.cutover:
        raise ConfigError("--publication, --keep-slot and --cutover-at-end go with --follow")
    return bool(args.follow or args.cutover)


def run(args: argparse.Namespace, out: Output, options: SendOptions) -> int:
    """``options``: the send's own (send/compose.py), so a follow has every option a send has:
    its retries, bandwidth limit, CA file, and the post-quantum rule."""
    from transferd.core.jobkey import post_quantum_check_keys
    from transferd.send.compose import open_send_store
    from transferd.send.config import Counters

    with needs("postgres"):  # psycopg2 and pypgoutput: the [postgres] extra
        from transferd.send.follow import Follow, FollowOptions
    from transferd.send.state import default_state_dir
    from transferd.util.keyfiles import load_recipients, load_sender_key
    from transferd.util.runtime import run as run_async

    pg = source_options(args)
    if pg is None:
        raise ConfigError("--follow and --cutover apply to PostgreSQL sources (postgresql://…)")
    state_dir = args.state or default_state_dir()
    job_dir = state_dir / "jobs" / args.job
    if args.cutover and _running(job_dir):
        return _ask(job_dir, args.job, out)
    sender = load_sender_key(args.sender_key, out)
    recipients = load_recipients(args.recipient, args.recipients_file)
    if options.require_pq:  # refused before the store is opened (a directory store is made)
        post_quantum_check_keys(args.job, recipients, required=True)
    config = options.pipeline_config()
    store, _ = open_send_store(args.to, sender, options)
    follow_options = FollowOptions(publication=args.publication, keep_slot=args.keep_slot,
                                   cutover_at_end=args.cutover_at_end,
                                   max_retained_wal=args.max_retained_wal,
                                   require_pq=options.require_pq)  # fmt: skip
    counters = Counters()
    follow = Follow(spec=args.source, pg=pg, store=store, job=args.job, sender=sender,
                    recipients=recipients, state_dir=state_dir, config=config,
                    options=follow_options,
                    counters=counters)  # fmt: skip
    if args.cutover:
        follow.request_cutover()

    async def main() -> FollowResult:
        ticker = None if args.quiet else asyncio.create_task(_report(follow.status, out))
        try:
            return await follow.run()
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
            await store.close()

    result = run_async(main())
    from transferd.core.pgoutput import lsn_text

    s = result.status
    summary: dict[str, JSONValue] = {
        "job": result.job,
        "complete": True,
        "cutover_lsn": lsn_text(result.cutover_lsn),
        "sequence": result.manifest.body.sequence,
        "manifest_sha256": result.manifest.digest,
        "segments": s.segments,
        "transactions": s.transactions,
        "changes": s.changes,
        "bytes_sent": result.counters.bytes_sent,
        "seconds": round(result.seconds, 3),
    }
    out.result(summary, [f"copy complete up to LSN {lsn_text(result.cutover_lsn)}"])
    return EXIT_OK


def describe(s: FollowStatus) -> str:
    from transferd.core.pgoutput import lsn_text

    return (
        f"{s.phase}: published up to {lsn_text(s.published_lsn)}, lag {s.lag_seconds():.1f} s, "
        f"{s.segments:,} segments, {s.transactions:,} transactions, {s.changes:,} changes; slot "
        f"{human_bytes(s.unconfirmed_bytes)} unconfirmed, {human_bytes(s.retained_bytes)} of WAL "
        "kept"
    )


async def _report(status: FollowStatus, out: Output) -> None:
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL)
        if status.phase in ("starting", "copy") and not status.transactions:
            continue
        if out.json_mode:
            import json

            line = json.dumps({"follow": {"phase": status.phase, "lag_seconds": round(
                status.lag_seconds(), 3), "published_lsn": status.published_lsn,
                "unconfirmed_bytes": status.unconfirmed_bytes,
                "retained_bytes": status.retained_bytes}})  # fmt: skip
        else:
            line = f"transferd: follow: {describe(status)}"
        print(line, file=sys.stderr, flush=True)


def _running(job_dir: Path) -> bool:
    """Whether another process holds the job's lock (a follow running)."""
    try:
        fd = os.open(job_dir / "lock", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _ask(job_dir: Path, job: str, out: Output) -> int:
    """Write the request the running follow polls for, and wait until it has cut over."""
    from transferd.send.follow import CUTOVER_FILE

    request = job_dir / CUTOVER_FILE
    request.write_text(f"requested {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    out.warning(f"asked the running follow of job {job} to cut over; waiting for it", hint=None)
    while _running(job_dir):
        time.sleep(1)
    state = _phase(job_dir / "follow.sqlite")
    if state is None or state[0] != "done":
        raise TransferdError(f"the follow of job {job} stopped before its cut-over",
                             hint="see its output; run the same send with --cutover to resume "
                             "it and cut over")  # fmt: skip
    summary: dict[str, JSONValue] = {"job": job, "complete": True, "cutover_lsn": state[1]}
    out.result(summary, [f"copy complete up to LSN {state[1]}"])
    return EXIT_OK


def _phase(path: Path) -> tuple[str, str] | None:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        rows = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('phase', 'cutover_lsn')"))
        db.close()
    except sqlite3.Error:
        return None
    return str(rows.get("phase", "")), str(rows.get("cutover_lsn", ""))
