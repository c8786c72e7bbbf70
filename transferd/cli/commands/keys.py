"""``transferd keys show``: print the public key of a key file, or check a public key's text.

Given a secret key file (a recipient identity or a sender key), print its public key. Given a
file holding one public key, print it normalized (lower case), which also checks it: a mistyped
or truncated key fails with the reason and exit 2 before it can reach a job's configuration.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transferd.cli.output import JSONValue, Output, add_json_flag
from transferd.core.keys import (
    AnyKey,
    RecipientIdentity,
    RecipientKey,
    SenderSecretKey,
    parse_key_file,
    parse_key_text,
)
from transferd.errors import KeyFormatError
from transferd.util.secretfiles import SecretFileText, read_secret_file


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="inspect keys",
        description="Inspect recipient and sender keys.",
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        help="print the public key of a key file",
        description="Print the public key of a secret key file, or the normalized text of "
        "a public key, after checking it. Warns when a secret key file can be read by "
        "group or others.",
    )
    show.add_argument(
        "file",
        metavar="FILE",
        help="a key file from 'transferd keygen', or a file holding one public key; - reads stdin",
    )
    add_json_flag(show)
    show.set_defaults(run=run_show)


def parse_any_key(name: str, text: str) -> AnyKey:
    """The key a file holds: one key line of any kind, else what ``parse_key_file`` accepts.

    Errors are prefixed with ``name`` (the file) so the operator knows which file to fix.
    """
    lines = [ln.strip() for ln in text.splitlines()]
    body = [ln for ln in lines if ln and not ln.startswith("#")]
    try:
        if len(body) == 1:
            return parse_key_text(body[0])
        return parse_key_file(text)  # raises, naming how many keys it found
    except KeyFormatError as exc:
        raise KeyFormatError(f"{name}: {exc.message}", hint=exc.hint) from exc


def run_show(args: argparse.Namespace, out: Output) -> int:
    source: SecretFileText | None = None
    if args.file == "-":
        key = parse_any_key("<stdin>", sys.stdin.read())
    else:
        source = read_secret_file(Path(args.file))
        key = parse_any_key(args.file, source.text)
    if isinstance(key, RecipientIdentity | SenderSecretKey):
        secret, public = True, key.public()
        if source is not None and source.exposed:
            out.warning(
                f"{source.path} holds a secret key that group or others can access "
                f"(mode {source.mode:04o})",
                hint=f"run 'chmod 600 {source.path}'",
            )
    else:
        secret, public = False, key
    kind = "recipient" if isinstance(public, RecipientKey) else "sender"
    text = public.to_text()
    report: dict[str, JSONValue] = {
        "kind": kind,
        "public_key": text,
        "file": args.file,
        "secret": secret,
    }
    if isinstance(public, RecipientKey):  # a hybrid key is too long to compare by eye
        report |= {"type": public.type.value, "fingerprint": public.fingerprint()}
    out.result(report, [text])
    return 0
