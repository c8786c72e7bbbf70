"""``transferd keygen``: create a recipient identity or a sender key in a new 0600 file.

The secret is drawn here, with ``os.urandom``, and handed to the I/O-free core, which never
draws randomness itself. The public key is printed on stdout so it can be piped or pasted:
``transferd keygen --kind recipient -o owner.key > owner.pub``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from transferd.cli.output import Output, add_json_flag
from transferd.core.constants import KEY_SIZE
from transferd.core.keys import RecipientIdentity, SecretKey, SenderSecretKey, render_key_file
from transferd.util.secretfiles import write_secret_file

KINDS: dict[str, Callable[[bytes], SecretKey]] = {
    "recipient": RecipientIdentity.from_bytes,
    "sender": SenderSecretKey.from_bytes,
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "keygen",
        help="create a recipient identity or a sender key",
        description="Create a new secret key in FILE (mode 0600, never overwriting a file) "
        "and print its public key on stdout. A recipient identity (X25519) decrypts copies "
        "encrypted to its public key tdr1…; a sender key (Ed25519) signs what a job stores, "
        "and its public key tds1… verifies it.",
    )
    parser.add_argument(
        "--kind",
        required=True,
        choices=sorted(KINDS),
        help="recipient: who can read a copy; sender: who signs it",
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
    secret: SecretKey = KINDS[args.kind](os.urandom(KEY_SIZE))
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_secret_file(path, render_key_file(secret, created).encode())
    public = secret.public().to_text()
    out.result({"kind": args.kind, "public_key": public, "file": str(path)}, [public])
    return 0
