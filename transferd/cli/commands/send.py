"""``transferd send``: copy a source to a storage host, encrypted to the job's recipients.

Running the same command again after any interruption resumes the job: only what the host does
not hold is read and uploaded again. The job is complete when the host holds its manifest.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
from pathlib import Path

from transferd.cli import follow
from transferd.cli.azureargs import add_azure_arguments, azure_options
from transferd.cli.filterargs import add_filter_arguments, path_filter
from transferd.cli.lockargs import add_lock_arguments, lock_policy
from transferd.cli.output import JSONValue, Output, add_json_flag
from transferd.cli.pgargs import add_source_arguments, source_options
from transferd.cli.progress import report_progress
from transferd.core.constants import PACK_TARGET
from transferd.errors import EXIT_OK, EXIT_PARTIAL
from transferd.send.compose import SendOptions, compose_send
from transferd.send.config import Counters
from transferd.send.dryrun import DryRun, Planned, left_out_collector, plan
from transferd.send.run import SendResult, send
from transferd.send.state import default_state_dir
from transferd.sources.base import Source
from transferd.sources.directory import DirectorySource
from transferd.sources.open import is_postgres, open_source
from transferd.util.keyfiles import load_recipients, load_sender_key
from transferd.util.pathfilter import PathFilter
from transferd.util.runtime import run as run_async
from transferd.util.runtime import setup_logging
from transferd.util.units import format_rate, human_bytes, parse_rate, parse_size


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "send",
        help="copy a source to a storage host, end-to-end encrypted and resumable",
        description="Copy SOURCE (a directory, or a PostgreSQL database in one snapshot) to the "
        "store at --to, encrypted to every "
        "--recipient and signed with --sender-key. Run the same command again after any "
        "interruption to resume: only what the host does not hold is sent again.",
    )
    p.add_argument(
        "source",
        metavar="SOURCE",
        help="a directory, postgresql://USER@HOST:PORT/DB, or az://ACCOUNT/CONTAINER[/PREFIX]",
    )
    p.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="http(s)://HOST:PORT of a storage host (transferd serve), a local store directory, "
        "or s3://BUCKET/PREFIX (endpoint and credentials: $TRANSFERD_S3_CONFIG or AWS_*)",
    )
    p.add_argument("--job", required=True, metavar="NAME", help="the job's name at the host")
    p.add_argument(
        "--sender-key",
        required=True,
        type=Path,
        metavar="FILE",
        help="the sender key file (transferd keygen --kind sender)",
    )
    p.add_argument(
        "--recipient",
        "-r",
        action="append",
        default=[],
        metavar="KEY",
        help="a recipient public key tdrpq1… (hybrid) or tdr1… (classic); repeat for several; "
        "needed on a job's first run, kept for every later one",
    )
    p.add_argument(
        "--recipients-file",
        "-R",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a file of recipient keys, one per line",
    )
    p.add_argument(
        "--require-pq",
        action="store_true",
        help="refuse a job that has a classic-only (X25519, tdr1…) recipient, whose key wrap a "
        "future quantum computer could open (without it: a warning)",
    )
    p.add_argument(
        "--state",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"the sender's state directory (default {default_state_dir()})",
    )
    p.add_argument("--level", type=int, default=1, help="zstd level (default 1)")
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="compression and sealing threads (default: the number of cores)",
    )
    p.add_argument("--uploads", type=int, default=4, help="packs in flight (default 4)")
    p.add_argument(
        "--pack-size",
        type=parse_size,
        default=None,
        metavar="SIZE",
        help="close a pack at this size (default 16M)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=8,
        help="attempts per request before a dead host ends the run (default 8)",
    )
    p.add_argument(
        "--ca-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="CA or self-signed certificate to trust for https://",
    )
    p.add_argument(
        "--progress",
        choices=["auto", "always", "never"],
        default="auto",
        help="live progress line (auto: on a terminal)",
    )
    p.add_argument(
        "--bwlimit",
        type=parse_rate,
        default=0,
        metavar="RATE",
        help="at most RATE bytes per second to the store, e.g. 8M (binary multiples; 0: none)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be read, reused unchanged and left out; write and send nothing",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    add_filter_arguments(p, "a directory source copies")
    add_source_arguments(p)
    follow.add_arguments(p)
    add_azure_arguments(p)
    add_lock_arguments(
        p,
        "with an s3:// store: retain every object and manifest for DAYS days (the bucket "
        "must have Object Lock; the store is probed first)",
    )
    add_json_flag(p)
    p.set_defaults(
        run=run,
        resume_hint="nothing the host acknowledged is lost; run the same command again to "
        "resume (the recipients are kept: -r may be left out): {command}",
    )


def send_options(args: argparse.Namespace) -> SendOptions:
    """The options of this command line, as every send takes them (send/compose.py)."""
    return SendOptions(
        level=args.level,
        workers=args.workers,
        uploads=args.uploads,
        pack_size=args.pack_size or PACK_TARGET,
        retries=args.retries,
        ca_file=args.ca_file,
        postgres=source_options(args),
        azure=azure_options(args),
        require_pq=args.require_pq,
        bandwidth=args.bwlimit,
        object_lock=lock_policy(args),
    )


def run(args: argparse.Namespace, out: Output) -> int:
    setup_logging(quiet=args.quiet, json_mode=out.json_mode)
    if follow.wants_follow(args):
        return follow.run(args, out, send_options(args))
    sender = load_sender_key(args.sender_key, out)
    recipients = load_recipients(args.recipient, args.recipients_file)
    select = path_filter(args)
    if args.dry_run:
        return _dry_run(args, out, select)
    composed = compose_send(
        send_options(args).but(select=select), source=args.source, to=args.to, sender=sender
    )
    source, store = composed.source, composed.store
    interactive = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    counters = Counters()

    async def main() -> SendResult:
        shown = not args.quiet and args.progress != "never"
        progress = asyncio.create_task(
            report_progress(
                counters,
                source.size_hint,
                interactive=interactive and shown and not out.json_mode,
                json_mode=out.json_mode and shown,
            )
        )
        try:
            return await send(
                source=source,
                store=store,
                job=args.job,
                sender=sender,
                recipients=recipients,
                state_dir=args.state or default_state_dir(),
                config=composed.config,
                counters=counters,
                require_pq=composed.options.require_pq,
                warn=lambda message, hint: out.warning(message, hint=hint),
            )
        finally:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)
            await composed.close()

    result = run_async(main())
    c = result.counters
    body = result.manifest.body
    rate = (c.bytes_read + c.bytes_reused) / max(result.seconds, 1e-6)
    summary = {
        "job": result.job,
        "complete": not result.failures,
        "sequence": body.sequence,
        "manifest_sha256": result.manifest.digest,
        "entries": c.entries,
        "entries_unchanged": c.entries_reused,
        "bytes_read": c.bytes_read,
        "bytes_reused": c.bytes_reused,
        "bytes_deduplicated": c.bytes_deduplicated,
        "bytes_sent": c.bytes_sent,
        "packs_sent": c.packs_sent,
        "packs_adopted": result.reconciled.adopted,
        "stored_objects": body.totals.objects,
        "stored_bytes": body.totals.stored_bytes,
        "seconds": round(result.seconds, 3),
        "bwlimit": args.bwlimit,
        "failures": [
            {"path": p.decode("utf-8", "backslashreplace"), "error": m} for p, m in result.failures
        ],
    }
    lines = [
        f"job {result.job}: manifest {body.sequence} stored at {store.description}",
        f"  {c.entries:,} entries ({c.entries_reused:,} unchanged), read "
        f"{human_bytes(c.bytes_read)}, sent {human_bytes(c.bytes_sent)} in {c.packs_sent:,} packs, "
        f"{result.seconds:.1f} s, {human_bytes(rate)}/s",
    ]
    if composed.options.object_lock is not None:
        summary["object_lock"] = {"days": composed.options.object_lock.days,
                                  "mode": composed.options.object_lock.mode}  # fmt: skip
        lines.append(
            f"  every object and manifest retained {composed.options.object_lock.describe()}"
        )
    for p, m in result.failures:
        out.warning(f"not copied: {p.decode('utf-8', 'backslashreplace')}: {m}")
    out.result(summary, lines)
    return EXIT_PARTIAL if result.failures else EXIT_OK


def _dry_run(args: argparse.Namespace, out: Output, select: PathFilter) -> int:
    """What the send would do, from a listing of the source and the journal, read-only: the
    store is not contacted and no state is created."""
    left_out: collections.deque[tuple[bytes, int]] = collections.deque()
    source: Source
    if is_postgres(args.source) or args.source.startswith("az://"):
        source = open_source(
            args.source, postgres=source_options(args), azure=azure_options(args), select=select
        )
    else:
        source = DirectorySource(args.source, select, left_out_collector(left_out))
    state_dir = args.state or default_state_dir()

    def emit(p: Planned) -> None:
        if args.quiet:
            return
        path = p.path.decode("utf-8", "backslashreplace")
        data: dict[str, JSONValue] = {"event": "dry-run", "action": p.action, "path": path}
        if p.size is not None:
            data["size"] = p.size
        if p.message:
            data["message"] = p.message
        size = f" ({human_bytes(p.size)})" if p.size else ""
        note = f": {p.message}" if p.message else ""
        out.result(data, [f"{p.action:<10} {path}{size}{note}"])

    async def main() -> DryRun:
        try:
            return await plan(source, state_dir, args.job, left_out, emit)
        finally:
            await source.close()

    result = run_async(main())
    c, b = result.counts, result.bytes
    summary: dict[str, JSONValue] = {
        "job": args.job,
        "dry_run": True,
        "journal": str(result.journal) if result.journal else None,
        "entries": sum(c.values()) - c.get("left-out", 0),
        "read": c.get("read", 0),
        "bytes_read": b.get("read", 0),
        "unchanged": c.get("unchanged", 0),
        "bytes_unchanged": b.get("unchanged", 0),
        "records": c.get("record", 0),
        "left_out": c.get("left-out", 0),
        "bytes_left_out": b.get("left-out", 0),
        "unreadable": c.get("unreadable", 0),
        "bytes_sent_at_most": b.get("read", 0),
        "bwlimit": args.bwlimit,
    }
    first = "a first run" if result.journal is None else f"a resume from {result.journal}"
    lines = [
        f"job {args.job}: dry run ({first}); nothing was written or sent",
        f"  would read {c.get('read', 0):,} entries ({human_bytes(b.get('read', 0))}), reuse "
        f"{c.get('unchanged', 0):,} unchanged ({human_bytes(b.get('unchanged', 0))}), record "
        f"{c.get('record', 0):,} directories and links",
        f"  left out by the filter rules: {c.get('left-out', 0):,} "
        f"({human_bytes(b.get('left-out', 0))}); unreadable: {c.get('unreadable', 0):,}",
        f"  would send at most {human_bytes(b.get('read', 0))} (less after compression and "
        "deduplication)" + (f", at {format_rate(args.bwlimit)}" if args.bwlimit else ""),
    ]
    out.result(summary, lines)
    return EXIT_OK
