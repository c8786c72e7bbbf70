"""``transferd restore``: rebuild a stored copy's tree, byte for byte, in a directory.

Needs a recipient identity the copy is encrypted to; with any other key it stops before writing
anything ("this copy is not encrypted to key tdr1…", exit 12). Every chunk and every file is
checked as it is written, and a file gets its name only once its BLAKE3 matched (exit 12 or 13
naming the file otherwise). The target must be empty unless --force, or --resume to go on from
an interrupted restore (files it finished are kept once proven by size and BLAKE3).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from transferd.cli import pgrestore
from transferd.cli.filterargs import add_filter_arguments, path_filter
from transferd.cli.output import JSONValue, Output, add_json_flag
from transferd.cli.storeargs import add_read_location, open_for_reading
from transferd.core.keys import SenderPublicKey, SenderSecretKey
from transferd.errors import ConfigError
from transferd.restore.directory import RestoreProgress, RestoreResult, restore
from transferd.stores.base import Store
from transferd.util.keyfiles import load_identity, load_sender_key, parse_sender_arg
from transferd.util.pathfilter import PathFilter
from transferd.util.runtime import run as run_async
from transferd.util.runtime import setup_logging
from transferd.util.units import human_bytes

PROGRESS_INTERVAL = 5.0
"""Seconds between progress lines when stderr is not a terminal."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "restore",
        help="rebuild a stored copy's tree in a directory, checking every byte",
        description="Decrypt job NAME (its newest manifest, or --sequence N) with a recipient "
        "identity and rebuild its tree under --out: files byte for byte (sparse files stay "
        "sparse), directories, symlinks, modes and mtimes. Every chunk and every file's "
        "BLAKE3 is checked; a file appears under its name only once it is complete and "
        "verified. Nothing is ever written outside --out.",
        epilog="Example: transferd restore --store /srv/transferd --job snds-2026 "
        "--identity owner.key --sender tds1… --out /data/snds",
    )
    add_read_location(p)
    p.add_argument("--job", required=True, metavar="NAME", help="the job to restore")
    p.add_argument(
        "--identity",
        required=True,
        type=Path,
        metavar="FILE",
        help="a recipient identity file (transferd keygen --kind recipient) the copy is "
        "encrypted to",
    )
    dest = p.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", type=Path, metavar="DIR", help="where to rebuild the tree")
    dest.add_argument(
        "--to",
        metavar="URL",
        help="postgresql://USER@HOST:PORT/DB: restore a copy of a PostgreSQL database into "
        "this empty database (schema, rows, sequences, large objects)",
    )
    p.add_argument(
        "--sender",
        metavar="KEY",
        help="the sender's public key tds1…, or a file holding it: refuse a manifest signed "
        "by any other key (without it, the signer is only named in a warning)",
    )
    p.add_argument(
        "--sequence", type=int, metavar="N", help="restore manifest N instead of the newest"
    )
    target = p.add_mutually_exclusive_group()
    target.add_argument(
        "--force",
        action="store_true",
        help="restore into a directory that is not empty, replacing files of the same names",
    )
    target.add_argument(
        "--resume",
        action="store_true",
        help="go on from an interrupted restore into --out: files it finished (name, mode and "
        "mtime as in the copy) are read and proven by size and BLAKE3 instead of fetched again",
    )
    keys = p.add_mutually_exclusive_group()
    keys.add_argument(
        "--reader-key",
        type=Path,
        metavar="FILE",
        help="with --from: a sender-kind key file the host allows to read (serve --allow-reader)",
    )
    keys.add_argument(
        "--sender-key",
        type=Path,
        metavar="FILE",
        help="with --from: the job's sender key file, to sign requests with; also checks "
        "that the manifest is signed by it when --sender is not given",
    )
    p.add_argument("--ca-file", type=Path, metavar="FILE", help="CA to trust for https://")
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="threads opening chunks (default: the number of cores)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    add_filter_arguments(p, "a restore into --out writes (only their packs are fetched)")
    pgrestore.add_arguments(p)
    add_json_flag(p)
    p.set_defaults(
        run=run,
        resume_hint="the files restored so far are complete and verified; run it again with "
        "--resume to keep them and go on: {command}",
    )


def _open(args: argparse.Namespace, key: SenderSecretKey | None) -> Store:
    return open_for_reading(
        args,
        key,
        attempts=8,
        key_hint="give --reader-key FILE (a key the host allows with serve --allow-reader) "
        "or --sender-key FILE",
    )


def run(args: argparse.Namespace, out: Output) -> int:
    if args.sequence is not None and args.sequence < 1:
        raise ConfigError("--sequence must be 1 or more")
    if args.to is None and (args.split_tables_larger_than or args.password_file is not None
                            or args.until_lsn is not None):  # fmt: skip
        flag = (
            "--password-file"
            if args.password_file
            else ("--split-tables-larger-than" if args.split_tables_larger_than else "--until-lsn")
        )
        raise ConfigError(f"{flag} applies to a restore into a database (--to postgresql://…)")
    # into a database, --resume goes on applying a follow copy's changes (cli/pgrestore.py)
    select = path_filter(args)
    if select.active and args.to is not None:
        raise ConfigError(
            "--include, --exclude and --filter apply to a restore into a directory (--out)"
        )
    setup_logging(quiet=args.quiet, json_mode=out.json_mode)
    identity = load_identity(args.identity, out)
    signing_key: SenderSecretKey | None = None
    if args.reader_key is not None:
        signing_key = load_sender_key(args.reader_key, out)
    elif args.sender_key is not None:
        signing_key = load_sender_key(args.sender_key, out)
    sender: SenderPublicKey | None = None
    if args.sender is not None:
        sender = parse_sender_arg(args.sender)
    elif args.sender_key is not None and signing_key is not None:
        sender = signing_key.public()
    store = _open(args, signing_key)
    if args.to is not None:
        return pgrestore.run(args, out, store, identity, sender)
    progress = RestoreProgress()

    def warn(message: str, hint: str | None) -> None:
        out.warning(message, hint=hint)

    async def main() -> RestoreResult:
        ticker = None
        if not args.quiet:
            ticker = asyncio.create_task(_report(progress, out, sys.stderr.isatty()))
        try:
            return await restore(
                store=store,
                job=args.job,
                identity=identity,
                out=args.out,
                sender=sender,
                sequence=args.sequence,
                force=args.force,
                resume=args.resume,
                workers=max(0, args.workers),
                progress=progress,
                warn=warn,
                select=select,
            )
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
            await store.close()

    result = run_async(main())
    c = result.counters
    if select.active and not (c.files or c.symlinks or c.dirs or c.files_kept):
        out.warning(
            f"nothing in job {args.job} matches the filter rules: nothing was restored",
            hint=f"list its files with: transferd ls … --job {args.job} --identity FILE",
        )
    _summary(result, args, out, select)
    return 0


def describe(progress: RestoreProgress, now: float) -> str:
    elapsed = max(now - progress.started, 1e-6)
    files = progress.writing.files if progress.writing else 0
    return (
        f"restored {human_bytes(progress.bytes)}, {human_bytes(progress.bytes / elapsed)}/s, "
        f"{files:,} files, {progress.entries:,} entries"
    )


async def _report(progress: RestoreProgress, out: Output, interactive: bool) -> None:
    """Until cancelled: a live line on a terminal, else a plain line every few seconds."""
    if interactive and not out.json_mode:
        try:
            while True:
                await asyncio.sleep(0.5)
                sys.stderr.write("\r\x1b[2K" + describe(progress, time.monotonic())[:200])
                sys.stderr.flush()
        finally:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL)
        files = progress.writing.files if progress.writing else 0
        out.progress(
            {"bytes": progress.bytes, "entries": progress.entries, "files": files},
            describe(progress, time.monotonic()),
        )


def _summary(
    result: RestoreResult, args: argparse.Namespace, out: Output, select: PathFilter
) -> None:
    c = result.counters
    body = result.manifest.body
    seconds = max(result.seconds, 1e-6)
    summary: dict[str, JSONValue] = {
        "job": result.job,
        "sequence": body.sequence,
        "manifest_sha256": result.manifest.digest,
        "sender": body.sender,
        "sender_checked": result.signer_checked,
        "out": str(args.out),
        "files": c.files,
        "dirs": c.dirs,
        "symlinks": c.symlinks,
        "bytes": result.bytes,
        "bytes_written": c.bytes_written,
        "bytes_sparse": c.bytes_holes,
        "bytes_fetched": result.bytes_fetched,
        "files_kept": c.files_kept,
        "bytes_kept": c.bytes_kept,
        "selection": select.selection() or None,
        "seconds": round(result.seconds, 3),
        "mb_per_s": round(result.bytes / seconds / 1e6, 1),
    }
    lines = [
        f"job {result.job}: manifest {body.sequence} restored into {args.out}",
        f"  {c.files:,} files, {c.dirs:,} directories, {c.symlinks:,} symlinks, "
        f"{human_bytes(result.bytes)} in {result.seconds:.1f} s, "
        f"{result.bytes / seconds / 1e6:.1f} MB/s",
    ]
    if c.files_kept:
        lines.append(
            f"  {c.files_kept:,} files ({human_bytes(c.bytes_kept)}) kept from the interrupted "
            "restore, each proven by its size and BLAKE3"
        )
    out.result(summary, lines)
