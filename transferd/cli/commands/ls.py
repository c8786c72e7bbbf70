"""``transferd ls``: what a store holds, as restic's ``snapshots`` and ``ls`` show it.

Three depths: the jobs of a store (each with its manifests, the newest one's date, size and
sender); with ``--job``, every manifest of the job (sequence, date, objects, stored bytes, sender,
SHA-256); with ``--job`` and ``--identity``, the tree of one version (its newest manifest, or
``--sequence N``), read from the encrypted catalog alone: no pack is fetched. With ``--sender``
every manifest's signature is checked; without it, who signed each is shown, not checked.
"""

from __future__ import annotations

import argparse
import datetime
import stat
from collections.abc import Sequence
from pathlib import Path

from transferd.cli.output import JSONValue, Output, add_json_flag
from transferd.cli.storeargs import add_read_location, open_for_reading
from transferd.core.catalog_walk import show
from transferd.core.keys import SenderPublicKey, SenderSecretKey
from transferd.errors import ConfigError, JobNotFoundError, ObjectNotFoundError
from transferd.read.listing import Listed, ManifestInfo, manifests, tree
from transferd.read.reader import JobReader, load_manifest, unwrap_key
from transferd.stores.base import Store
from transferd.util.keyfiles import load_identity, load_sender_key, parse_sender_arg
from transferd.util.runtime import run as run_async
from transferd.util.units import human_bytes


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "ls",
        help="list a store's jobs, a job's manifests, or the files of one version",
        description="List what a store holds: its jobs; with --job, the job's manifests "
        "(sequence, date, objects, stored bytes, sender); with --job and --identity, the "
        "files of its newest manifest (or --sequence N), read from the encrypted catalog "
        "without fetching any content.",
        epilog="Example: transferd ls --store /srv/transferd --job snds-2026 --identity "
        "owner.key --sender tds1…",
    )
    add_read_location(p)
    p.add_argument("--job", metavar="NAME", help="the job whose manifests (or files) to list")
    p.add_argument(
        "--identity",
        type=Path,
        metavar="FILE",
        help="with --job: a recipient identity the copy is encrypted to; lists its files",
    )
    p.add_argument("--sequence", type=int, metavar="N", help="with --identity: manifest N")
    p.add_argument(
        "--sender",
        metavar="KEY",
        help="the sender's public key tds1… (or a file holding it): check every manifest's "
        "signature (without it, the signer is shown, not checked)",
    )
    p.add_argument(
        "--reader-key",
        type=Path,
        metavar="FILE",
        help="with --from: a sender-kind key the host allows to read (serve --allow-reader)",
    )
    p.add_argument("--ca-file", type=Path, metavar="FILE", help="CA to trust for https://")
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Output) -> int:
    if args.identity is not None and args.job is None:
        raise ConfigError("--identity lists the files of one job: give --job NAME too")
    if args.sequence is not None and args.identity is None:
        raise ConfigError("--sequence chooses the version whose files --identity lists")
    if args.sequence is not None and args.sequence < 1:
        raise ConfigError("--sequence must be 1 or more")
    identity = load_identity(args.identity, out) if args.identity is not None else None
    key: SenderSecretKey | None = None
    if args.reader_key is not None:
        key = load_sender_key(args.reader_key, out)
    sender = parse_sender_arg(args.sender) if args.sender is not None else None
    store = open_for_reading(
        args, key, attempts=8, key_hint="give --reader-key FILE (a key the host allows with "
        "serve --allow-reader)",
    )  # fmt: skip

    async def main() -> None:
        try:
            if args.job is None:
                await _jobs(store, sender, out)
            elif identity is None:
                await _manifests(store, args.job, sender, out)
            else:
                signed = await load_manifest(
                    store, args.job, sender=sender, sequence=args.sequence,
                    warn=lambda m, h: out.warning(m, hint=h),
                )  # fmt: skip
                async with JobReader(store, signed, unwrap_key(signed, identity)) as reader:
                    await _tree(reader, out)
        finally:
            await store.close()

    run_async(main())
    return 0


async def _infos(store: Store, job: str, sender: SenderPublicKey | None) -> list[ManifestInfo]:
    try:
        return [info async for info in manifests(store, job, sender)]
    except ObjectNotFoundError:
        return []


async def _jobs(store: Store, sender: SenderPublicKey | None, out: Output) -> None:
    jobs = await store.list_jobs()
    rows = [("JOB", "MANIFESTS", "NEWEST", "CREATED", "OBJECTS", "STORED", "SENDER")]
    for job in jobs:
        infos = await _infos(store, job, sender)
        newest = infos[-1] if infos else None
        data: dict[str, JSONValue] = {"job": job, "manifests": len(infos), "newest": None}
        if newest is not None:
            data["newest"] = _manifest_json(newest)
        if out.json_mode:
            out.result(data, [])
        rows.append(
            (job, str(len(infos)), str(newest.sequence) if newest else "-",
             newest.created if newest else "-", f"{newest.objects:,}" if newest else "-",
             human_bytes(newest.stored_bytes) if newest else "-",
             _signer(newest) if newest else "-")
        )  # fmt: skip
    summary: dict[str, JSONValue] = {"store": store.description, "jobs": len(jobs)}
    if not jobs:
        out.result(summary, [f"no jobs at {store.description}"])
        return
    out.result(summary, _table(rows))


async def _manifests(store: Store, job: str, sender: SenderPublicKey | None, out: Output) -> None:
    infos = await _infos(store, job, sender)
    if not infos:
        raise JobNotFoundError(
            f"job {job} has no manifest at {store.description}",
            hint="list the store's jobs with 'transferd ls' without --job; a send publishes "
            "its manifest when a run completes",
        )
    rows = [("SEQ", "CREATED", "OBJECTS", "STORED", "SENDER", "SHA-256")]
    for info in infos:
        if out.json_mode:
            out.result(_manifest_json(info), [])
        rows.append(
            (str(info.sequence), info.created, f"{info.objects:,}",
             human_bytes(info.stored_bytes), _signer(info), info.sha256[:16] + "…")
        )  # fmt: skip
    checked = "checked" if sender is not None else "not checked: give --sender to check them"
    summary: dict[str, JSONValue] = {
        "job": job, "store": store.description, "manifests": len(infos),
        "signatures_checked": sender is not None,
    }  # fmt: skip
    head = (
        f"job {job} at {store.description}: manifests {infos[0].sequence} to "
        f"{infos[-1].sequence}, signatures {checked}"
    )
    out.result(summary, [head, *_table(rows)])


async def _tree(reader: JobReader, out: Output) -> None:
    files = streams = total = entries = 0
    async for item in tree(reader):
        entries += 1
        e = item.entry
        if item.size is not None:
            streams += 1
            total += item.size
            files += e.kind == "file"
        out.result(_entry_json(item), [_entry_line(item)])
    body = reader.manifest.body
    summary: dict[str, JSONValue] = {
        "job": body.job, "sequence": body.sequence, "created": body.created,
        "entries": entries, "files": files, "streams": streams, "bytes": total,
    }  # fmt: skip
    line = (
        f"job {body.job}, manifest {body.sequence} of {body.created}: {entries:,} entries, "
        f"{files:,} files, {human_bytes(total)}"
    )
    out.result(summary, [line])


def _signer(info: ManifestInfo) -> str:
    return info.sender[:16] + "…" + ("" if info.checked else " (unchecked)")


def _manifest_json(info: ManifestInfo) -> dict[str, JSONValue]:
    return {
        "job": info.job, "sequence": info.sequence, "created": info.created,
        "objects": info.objects, "stored_bytes": info.stored_bytes, "sender": info.sender,
        "sender_checked": info.checked, "sha256": info.sha256,
    }  # fmt: skip


def _entry_json(item: Listed) -> dict[str, JSONValue]:
    e = item.entry
    data: dict[str, JSONValue] = {"path": show(e.path), "kind": e.kind, "mode": e.mode,
                                  "mtime_ns": e.mtime_ns}  # fmt: skip
    if item.size is not None:
        data.update(size=item.size, blake3=item.blake3)
    if e.target is not None:
        data["target"] = show(e.target)
    return data


def _entry_line(item: Listed) -> str:
    """``-rw-r--r--  1.2 KiB  2026-05-02 10:00:00  path``, as ``ls -l`` and restic's ``ls -l``."""
    e = item.entry
    kind = {"dir": stat.S_IFDIR, "symlink": stat.S_IFLNK}.get(e.kind, stat.S_IFREG)
    mode = stat.filemode(kind | (e.mode if e.mode is not None else 0o777))
    size = human_bytes(item.size) if item.size is not None else "-"
    when = "-"
    if e.mtime_ns is not None:
        when = datetime.datetime.fromtimestamp(e.mtime_ns / 1e9, datetime.UTC).strftime(
            "%Y-%m-%d %H:%M:%S"
        )
    link = f" -> {show(e.target)}" if e.target is not None else ""
    kind_note = f" ({e.kind})" if e.kind not in ("file", "dir", "symlink") else ""
    return f"{mode}  {size:>10}  {when}  {show(e.path)}{link}{kind_note}"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]  # fmt: skip
