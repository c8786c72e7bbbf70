"""``transferd verify``: prove a stored copy complete and untouched, and write the report.

Without any decryption key it checks the chain of signed manifests, rollback against what this
verifier saw before, and every stored object's presence, size and SHA-256 (verify/run.py). The
verdict is the exit code (0, or 20-24: README.md, protocol/REPORT.md); the report (JSON and HTML,
hashed, optionally signed) lists every check and every failure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from transferd.cli.copyverify import run_copy_verify
from transferd.cli.lockargs import add_lock_arguments, lock_policy
from transferd.cli.output import Output, add_json_flag
from transferd.cli.pgargs import add_password_file
from transferd.cli.readprogress import show_progress
from transferd.cli.storeargs import add_read_location, open_for_reading
from transferd.core.keys import SenderSecretKey
from transferd.errors import (
    VERDICT_ERRORS,
    VERDICT_TEXT,
    ConfigError,
    StoreUnopenedError,
    StoreUnreadableError,
)
from transferd.report import html, seal
from transferd.report.model import Report
from transferd.sources.open import is_postgres
from transferd.stores.base import Store
from transferd.util.durable import replace_file
from transferd.util.keyfiles import load_identity, load_sender_key, parse_sender_arg
from transferd.util.runtime import run as run_async
from transferd.verify.objects import Throughput, default_workers
from transferd.verify.retention import retention_check
from transferd.verify.run import VerifyOptions, verify_copy
from transferd.verify.seen import SeenState, default_seen_path

HUMAN_FAILURES = 50
"""Failures printed on the terminal; the report lists them all."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "verify",
        help="prove a stored copy complete and untouched, without the decryption key",
        description="Check every manifest of job NAME (signed by --sender, one hash-linked chain, "
        "not older than one seen before) and every stored object it names (present, full size, "
        "SHA-256), and name every missing, truncated, altered or extra object. Needs no "
        "decryption key. Exit 0 when everything holds; 20 incomplete, 21 altered, 22 manifests "
        "not trusted (signature, chain, rollback), 23 could not read, 24 differs from "
        "--against SOURCE.",
        epilog="Example: transferd verify --store /srv/transferd --job snds-2026 --sender tds1… "
        "--report-json report.json --report-html report.html --sign-report auditor.key",
    )
    add_read_location(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--job", metavar="NAME", help="the job to verify")
    what.add_argument(
        "--copy",
        metavar="NAME",
        help="verify a whole copy: its signed copy manifests, then every job they name",
    )
    p.add_argument(
        "--sender",
        required=True,
        metavar="KEY",
        help="the sender's public key tds1…, or a file holding it: the only key that may "
        "have signed the job's manifests",
    )
    p.add_argument(
        "--reader-key",
        type=Path,
        metavar="FILE",
        help="with --from: the sender-kind key file that signs this verifier's requests (allowed "
        "on the host with serve --allow-reader); default: the --sign-report key",
    )
    p.add_argument("--ca-file", type=Path, metavar="FILE", help="CA to trust for https://")
    p.add_argument(
        "--deep",
        action="store_true",
        help="also open every chunk (AEAD tag, chunk id) and check every file's size and BLAKE3 "
        "and the catalog's totals: a restore that writes nothing (needs --identity)",
    )
    p.add_argument(
        "--against",
        metavar="SOURCE",
        help="also compare the copy with the source directory SOURCE as it is now: entries, "
        "kinds, modes, link targets, sizes and BLAKE3 of every file; or with the database "
        "postgresql://USER@HOST:PORT/DB: tables, row counts, BLAKE3 of every table's rows and "
        "large objects (needs --identity)",
    )
    add_password_file(p, "the --against database")
    p.add_argument(
        "--identity",
        type=Path,
        metavar="FILE",
        help="a recipient identity file of the job, for --deep and --against",
    )
    p.add_argument(
        "--seen-state",
        type=Path,
        metavar="FILE",
        help=f"where the newest manifest seen per store and job is kept (default "
        f"{default_seen_path()})",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="hashing threads (default: the number of cores)",
    )
    p.add_argument("--report-json", type=Path, metavar="FILE", help="write the JSON report here")
    p.add_argument("--report-html", type=Path, metavar="FILE", help="write the HTML report here")
    p.add_argument(
        "--sign-report",
        type=Path,
        metavar="KEYFILE",
        help="sign the report with this sender-kind key file (the auditor's own key)",
    )
    p.add_argument(
        "--progress",
        choices=["auto", "always", "never"],
        default="auto",
        help="live progress line on stderr (auto: on a terminal)",
    )
    add_lock_arguments(
        p,
        "with an s3:// store: also read every object's and manifest's retention, report "
        "it, and fail (25) if one has none or is retained for less than DAYS days",
    )
    add_json_flag(p)
    p.set_defaults(run=run)


def _against(spec: str | None) -> str | None:
    if spec is None or is_postgres(spec):
        return spec
    return os.path.abspath(spec)


def _open(args: argparse.Namespace, signer: SenderSecretKey | None, out: Output) -> Store:
    key = load_sender_key(args.reader_key, out) if args.url and args.reader_key else signer
    try:
        return open_for_reading(
            args,
            key,
            attempts=4,
            key_hint="give --reader-key FILE (a key the host allows with serve --allow-reader)",
        )
    except StoreUnopenedError as e:
        raise StoreUnreadableError(e.message) from None


def run(args: argparse.Namespace, out: Output) -> int:
    sender = parse_sender_arg(args.sender)
    if (args.deep or args.against) and args.identity is None:
        raise ConfigError(
            "--deep and --against read the encrypted catalog: give --identity FILE",
            hint="without a key, verify proves every stored object; add the key to open them",
        )
    if args.identity is not None and not (args.deep or args.against):
        raise ConfigError("--identity is only used with --deep or --against")
    identity = load_identity(args.identity, out) if args.identity else None
    signer = load_sender_key(args.sign_report, out) if args.sign_report else None
    seen = SeenState(args.seen_state or default_seen_path())
    store = _open(args, signer, out)
    throughput = Throughput()
    options = VerifyOptions(
        seen=seen,
        workers=max(1, args.workers),
        identity=identity,
        deep=args.deep,
        against=_against(args.against),
        against_password_file=args.password_file,
        throughput=throughput,
    )
    interactive = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
    lock = lock_policy(args)
    retention = retention_check(store, lock)
    if args.copy is not None:
        return run_copy_verify(
            store, args.copy, sender, options, out,
            report_json=args.report_json, report_html=args.report_html, signer=signer,
            write=_write, retention=retention,
        )  # fmt: skip

    async def main() -> Report:
        progress = asyncio.create_task(
            show_progress(
                throughput,
                interactive=interactive,
                out=out if args.progress != "never" else None,
            )
        )
        try:
            report = await verify_copy(store, args.job, sender, options)
            if retention is not None:
                await retention.job(args.job)
            return report
        finally:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)
            await store.close()

    report = run_async(main())
    document = seal.seal(report.to_json(), signer)
    if args.report_json:
        _write(args.report_json, seal.dumps(document))
    if args.report_html:
        _write(args.report_html, html.render(document))
    lines = _human(report, document, args)
    shown: dict[str, Any] = document
    if retention is not None:
        lines += retention.check.lines()
        shown = {**document, "retention": retention.check.to_json()}
    out.result(shown, lines)
    error = VERDICT_ERRORS.get(report.verdict)
    if error is not None:
        raise error(
            f"verification failed: {report.summary()}",
            hint="the report lists every failure"
            if args.report_json or args.report_html
            else "write the full list with --report-json FILE or --report-html FILE",
        )
    if retention is not None:
        retention.raise_if_short()
    return 0


def _write(path: Path, text: str) -> None:
    """Write a report whole and durably (util/durable.py): a filed report is evidence, and a crash
    must leave the old file or the new one, never half of one."""
    try:
        replace_file(path, text.encode("utf-8"), mode=0o666)  # a user's file: the umask decides
    except OSError as e:
        reason = (e.strerror or str(e)).lower()
        raise ConfigError(f"cannot write report {path}: {reason}", path=str(path)) from None


def _human(report: Report, document: dict[str, Any], args: argparse.Namespace) -> list[str]:
    counts = report.counts
    lines = [
        f"verify job {report.job} at {report.store}: {report.verdict.upper()}, "
        f"{VERDICT_TEXT[report.verdict]}",
    ]
    trusted = [m for m in report.manifests if m.get("trusted")]
    if report.manifests:
        lines.append(
            f"  manifests: {len(report.manifests)} stored, {len(trusted)} trusted, signed by "
            f"{report.sender}"
        )
    named = max(counts.get("objects_signed", 0), counts.get("objects_referenced", 0))
    missing = max(report.failure_counts.get("missing", 0), named - counts.get("objects_listed", 0))
    lines.append(
        f"  objects: {named:,} named" + (f" ({missing:,} missing)" if missing else "") + ", "
        f"{counts.get('objects_listed', 0):,} in the store, "
        f"{counts.get('objects_read', 0):,} read"
    )
    if report.deep or report.against:
        opened = f", {counts.get('chunks_opened', 0):,} chunks opened" if report.deep else ""
        lines.append(
            f"  catalog: {counts.get('entries', 0):,} entries, {counts.get('files', 0):,} files, "
            f"{counts.get('plain_bytes', 0) / 1e6:,.1f} MB{opened}"
        )
    if report.against:
        left_out = counts.get("source_entries_left_out")
        lines.append(
            f"  source {report.against}: {counts.get('source_entries', 0):,} entries compared"
            + (f", {left_out:,} left out by the copy's filter rules" if left_out else "")
        )
    lines += [
        f"  {c['result'].upper():7} {c['id']}: {c['detail']}"
        for c in document["checks"]
        if c["result"] != "pass"
    ]
    lines += [f"  {f.kind}: {f.message}" for f in report.failures[:HUMAN_FAILURES]]
    shown = min(len(report.failures), HUMAN_FAILURES)
    total = sum(report.failure_counts.values())
    if total > shown:
        lines.append(f"  … and {total - shown:,} more failures (see the report)")
    tp = report.throughput
    seconds = tp.get("read_ms", 0) / 1000
    lines.append(
        f"  read {counts.get('objects_read', 0):,} objects, "
        f"{counts.get('bytes_read', 0) / 1e6:,.1f} MB in {seconds:.2f} s: "
        f"{tp.get('objects_per_second', 0):,} objects/s, "
        f"{tp.get('bytes_per_second', 0) / 1e6:,.1f} MB/s"
    )
    if "deep_ms" in tp:
        lines.append(
            f"  {'opened' if report.deep else 'compared'} with the key in "
            f"{tp['deep_ms'] / 1000:.2f} s: {tp.get('plain_bytes_per_second', 0) / 1e6:,.1f} MB/s"
            " of plaintext"
        )
    reports = [str(p) for p in (args.report_json, args.report_html) if p]
    lines.append(
        f"  report sha256 {document['report_sha256']}"
        + (", signed by " + document["signature"]["key"] if "signature" in document else "")
        + (f" ({', '.join(reports)})" if reports else "")
    )
    return lines
