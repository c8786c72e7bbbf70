"""``transferd send``: copy a source to a storage host, encrypted to the job's recipients.

Running the same command again after any interruption resumes the job: only what the host does
not hold is read and uploaded again. The job is complete when the host holds its manifest.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from transferd.cli import follow
from transferd.cli.azureargs import add_azure_arguments, azure_options
from transferd.cli.output import Output, add_json_flag
from transferd.cli.pgargs import add_source_arguments, source_options
from transferd.cli.progress import report_progress
from transferd.core.constants import PACK_TARGET
from transferd.errors import EXIT_OK, EXIT_PARTIAL
from transferd.send.compose import SendOptions, compose_send
from transferd.send.config import Counters
from transferd.send.run import SendResult, send
from transferd.send.state import default_state_dir
from transferd.util.keyfiles import load_recipients, load_sender_key
from transferd.util.runtime import run as run_async
from transferd.util.runtime import setup_logging
from transferd.util.units import human_bytes, parse_size


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
        "needed for a new job",
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
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    add_source_arguments(p)
    follow.add_arguments(p)
    add_azure_arguments(p)
    add_json_flag(p)
    p.set_defaults(run=run)


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
    )


def run(args: argparse.Namespace, out: Output) -> int:
    setup_logging(quiet=args.quiet)
    if follow.wants_follow(args):
        return follow.run(args, out, send_options(args))
    sender = load_sender_key(args.sender_key, out)
    recipients = load_recipients(args.recipient, args.recipients_file)
    composed = compose_send(send_options(args), source=args.source, to=args.to, sender=sender)
    source, store = composed.source, composed.store
    interactive = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    counters = Counters()

    async def main() -> SendResult:
        progress = asyncio.create_task(
            report_progress(counters, source.size_hint, interactive=interactive and not args.quiet)
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
    for p, m in result.failures:
        out.warning(f"not copied: {p.decode('utf-8', 'backslashreplace')}: {m}")
    out.result(summary, lines)  # type: ignore[arg-type]
    return EXIT_PARTIAL if result.failures else EXIT_OK
