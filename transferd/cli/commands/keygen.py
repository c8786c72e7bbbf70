"""``transferd keygen``: create a recipient identity or a sender key in a new 0600 file.

A recipient identity is hybrid post-quantum (ML-KEM-768 + X25519, ``tdrpq1…``) unless
``--classic`` asks for X25519 alone (``tdr1…``), for a reader that cannot take hybrid keys yet.
The secret is drawn here, with ``os.urandom``, and handed to the I/O-free core. The public key is
printed on stdout so it can be piped or pasted:
``transferd keygen --kind recipient -o owner.key > owner.pub``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from transferd.cli.output import JSONValue, Output, add_json_flag
from transferd.core.constants import KEY_SIZE
from transferd.core.keys import (
    RecipientIdentity,
    RecipientKey,
    SecretKey,
    SenderSecretKey,
    render_key_file,
)
from transferd.errors import ConfigError
from transferd.util.secretfiles import write_secret_file

KINDS: dict[str, Callable[[bytes], SecretKey]] = {
    "recipient": RecipientIdentity.hybrid,
    "sender": SenderSecretKey.from_bytes,
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "keygen",
        help="create a recipient identity or a sender key",
        description="Create a new secret key in FILE (mode 0600, never overwriting a file) "
        "and print its public key on stdout. A recipient identity decrypts copies encrypted "
        "to its public key: hybrid post-quantum (ML-KEM-768 + X25519, tdrpq1…, 1958 "
        "characters) unless --classic; a sender key (Ed25519) signs what a job stores, and "
        "its public key tds1… verifies it.",
    )
    parser.add_argument(
        "--kind",
        required=True,
        choices=sorted(KINDS),
        help="recipient: who can read a copy; sender: who signs it",
    )
    parser.add_argument(
        "--classic",
        action="store_true",
        help="a classic X25519 recipient (tdr1…), which a quantum computer could break: only "
        "for readers that cannot take hybrid keys yet",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="FILE",
        help="the key file to create; its directory must exist",
    )
    add_json_flag(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, out: Output) -> int:
    path: Path = args.output
    if args.classic and args.kind != "recipient":
        raise ConfigError("--classic applies to recipient keys only")
    make = RecipientIdentity.from_bytes if args.classic else KINDS[args.kind]
    secret: SecretKey = make(os.urandom(KEY_SIZE))
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_secret_file(path, render_key_file(secret, created).encode())
    public = secret.public()
    report: dict[str, JSONValue] = {
        "kind": args.kind,
        "public_key": public.to_text(),
        "file": str(path),
    }
    if isinstance(public, RecipientKey):
        report |= {"type": public.type.value, "fingerprint": public.fingerprint()}
    out.result(report, [public.to_text()])
    return 0
