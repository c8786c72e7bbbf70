"""``transferd report check``: check a saved verify report's hash and signature.

A report is cited by its SHA-256 and may be signed by the auditor who ran the verify. This
recomputes the hash over the report's content (protocol/REPORT.md) and verifies the signature;
``--signer`` also requires that a given key signed it. Exit 0 when both hold, 13 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transferd.cli.output import Output, add_json_flag
from transferd.errors import ConfigError
from transferd.report import seal
from transferd.util.keyfiles import parse_sender_arg


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report",
        help="check a saved verify report",
        description="Work with the reports transferd verify writes.",
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="check a JSON report's hash and signature",
        description="Recompute a JSON verify report's SHA-256 over its content and check its "
        "Ed25519 signature, if any. Exit 0 when they hold, 13 when the report was changed or "
        "its signature does not verify (or is missing, or by another key than --signer).",
    )
    check.add_argument(
        "file", metavar="FILE", help="a report from verify --report-json; - reads stdin"
    )
    check.add_argument(
        "--signer",
        metavar="KEY",
        help="require a signature by this public key tds1… (or a file holding it)",
    )
    add_json_flag(check)
    check.set_defaults(run=run_check)


def run_check(args: argparse.Namespace, out: Output) -> int:
    signer = parse_sender_arg(args.signer) if args.signer else None
    if args.file == "-":
        what, text = "<stdin>", sys.stdin.read()
    else:
        what = args.file
        try:
            text = Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read report {args.file}: {e}") from None
    checked = seal.check(seal.load(text, what), what, signer)
    signed = f"signed by {checked.signer}" if checked.signer else "not signed"
    out.result(
        {
            "file": args.file,
            "report_sha256": checked.digest,
            "signer": checked.signer,
            "verdict": checked.verdict,
            "summary": checked.summary,
        },
        [
            f"report {what}: intact, sha256 {checked.digest}, {signed}",
            f"  verdict {checked.verdict}: {checked.summary}",
        ],
    )
    return 0
