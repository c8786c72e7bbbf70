"""``transferd rekey``: add or remove recipients of a stored job without re-sending it.

Writes one new manifest (N+1) whose stanzas wrap the same job key to the new recipient set;
every object stays as it is. Needs a current recipient's identity (to unwrap the key) and the
job's sender key (to sign the new manifest).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transferd.cli.output import JSONValue, Output, add_json_flag
from transferd.core.jobkey import PQ_HINT
from transferd.core.keys import RecipientKey, parse_recipient
from transferd.errors import JobNotFoundError, KeyFormatError
from transferd.rekey import RekeyResult, rekey
from transferd.send.run import utc_now
from transferd.stores.open import open_store
from transferd.stores.retry import RetryingStore
from transferd.util.keyfiles import load_identity, load_sender_key
from transferd.util.runtime import run as run_async
from transferd.util.runtime import setup_logging


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "rekey",
        help="add or remove recipients of a stored job, re-sending nothing",
        description="Publish a new manifest of job NAME that wraps its key to a changed set "
        "of recipients: each --add-recipient gets a new stanza, each --remove-recipient loses "
        "its stanza, the others keep theirs. No chunk is re-sent. A removed recipient who "
        "kept the job key can still read what is stored; rekey decides who can open the "
        "copy from now on. Replacing a classic recipient (tdr1…) by a hybrid one (tdrpq1…) "
        "moves the job to post-quantum wraps, but the older manifests keep the classic wrap "
        "of the same job key (protocol/THREATS.md section 4).",
        epilog="Example: transferd rekey --store /srv/transferd --job snds-2026 "
        "--identity owner.key --sender-key sender.key --add-recipient tdrpq1… "
        "--remove-recipient tdr1…",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", metavar="DIR", help="a store directory on this host")
    where.add_argument(
        "--to", dest="url", metavar="URL", help="http(s)://HOST:PORT of a storage host"
    )
    p.add_argument("--job", required=True, metavar="NAME", help="the job to rekey")
    p.add_argument(
        "--identity",
        required=True,
        type=Path,
        metavar="FILE",
        help="the identity file of a current recipient (to unwrap the job key)",
    )
    p.add_argument(
        "--sender-key",
        required=True,
        type=Path,
        metavar="FILE",
        help="the job's sender key file: the new manifest is signed with it",
    )
    p.add_argument(
        "--add-recipient",
        action="append",
        default=[],
        metavar="KEY",
        help="a recipient public key tdrpq1… or tdr1… to add (repeat for several)",
    )
    p.add_argument(
        "--remove-recipient",
        action="append",
        default=[],
        metavar="KEY",
        help="a recipient public key tdrpq1… or tdr1… to remove (repeat for several)",
    )
    p.add_argument(
        "--require-pq",
        action="store_true",
        help="refuse a new recipient set that keeps a classic-only (X25519, tdr1…) recipient",
    )
    p.add_argument("--ca-file", type=Path, metavar="FILE", help="CA to trust for https://")
    add_json_flag(p)
    p.set_defaults(run=run)


def _recipients(texts: list[str], option: str) -> list[RecipientKey]:
    keys: list[RecipientKey] = []
    for text in texts:
        try:
            keys.append(parse_recipient(text))
        except KeyFormatError as e:
            raise KeyFormatError(f"{option} {text[:16]}…: {e.message}", hint=e.hint) from None
    return keys


def run(args: argparse.Namespace, out: Output) -> int:
    setup_logging(json_mode=out.json_mode)
    add = _recipients(args.add_recipient, "--add-recipient")
    remove = _recipients(args.remove_recipient, "--remove-recipient")
    identity = load_identity(args.identity, out)
    sender = load_sender_key(args.sender_key, out)
    if args.store is not None:
        if not Path(args.store).is_dir():
            raise JobNotFoundError(f"store {args.store} does not exist or is not a directory")
        store = open_store(args.store)
    else:
        store = RetryingStore(open_store(args.url, sender, args.ca_file), attempts=8)

    async def main() -> RekeyResult:
        try:
            return await rekey(
                store=store,
                job=args.job,
                identity=identity,
                sender=sender,
                add=add,
                remove=remove,
                created=utc_now(),
                require_pq=args.require_pq,
            )
        finally:
            await store.close()

    result = run_async(main())
    body = result.manifest.body
    recipients = [s.recipient.to_text() for s in body.recipients]
    summary: dict[str, JSONValue] = {
        "job": body.job,
        "sequence": body.sequence,
        "previous_sequence": result.previous.body.sequence,
        "manifest_sha256": result.manifest.digest,
        "added": list(result.added),
        "removed": list(result.removed),
        "recipients": list(recipients),
    }
    if result.classic_kept is not None:
        out.warning(result.classic_kept, hint=PQ_HINT)
    if result.classic_removed:
        out.warning(
            f"manifests 1 to {result.previous.body.sequence} of job {body.job} still hold the "
            "classic (X25519) wrap of its job key: whoever recorded one can open every chunk, "
            "those sent later too, once X25519 falls",
            hint="send data that must stay post-quantum to a new job (a new job key), and "
            "re-send what is stored to one if it must too",
        )
    lines = [f"job {body.job}: manifest {body.sequence} stored; the copy is now encrypted to:"]
    lines += [f"  {s.recipient.display()}" for s in body.recipients]
    out.result(summary, lines)
    return 0
