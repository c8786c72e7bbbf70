"""Check a stored copy against its signed manifests; with the key, open it; against a source,
compare it. Every failure found goes into the report, whose categories give the verdict.

Without the decryption key (what a holder of the sender's public key can prove; protocol/REPORT.md):

1. the chain of manifests and rollback (verify/manifests.py);
2. every object a trusted manifest names (its object-list and catalog segments, and every pack
   its object lists name) is in the store, is not shorter than signed, and hashes to its name;
   each manifest's totals agree with its object lists (this module);
3. the store holds nothing else for the job.

With a recipient identity, on the newest trusted manifest: ``deep`` opens every chunk and checks
every stream and the catalog's totals (verify/deep.py), and a follow copy's change segments
(verify/deepchanges.py); ``against`` compares the catalog
with a source directory (verify/directory.py). The identity is tried before any object is read, so a
wrong key fails in a second, not after hours of hashing.

Nothing stops at the first failure. A manifest that fails (1) is not trusted: objects only it
names count as extra.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from transferd import __version__
from transferd.core import changes, objectlist
from transferd.core.changes import CHANGE_LIST_ENTRY_SIZE, CHANGE_LIST_MAX_ENTRIES, ChangeRef
from transferd.core.constants import OBJECT_LIST_ENTRY_SIZE, OBJECT_LIST_MAX_ENTRIES
from transferd.core.jobkey import JobKey
from transferd.core.keys import RecipientIdentity, SenderPublicKey
from transferd.core.manifest import ManifestBody
from transferd.core.pgoutput import lsn_text
from transferd.errors import FormatError, JobNotFoundError, ObjectNotFoundError, StoreError
from transferd.read.reader import JobReader, unwrap_key
from transferd.report.model import AGAINST_CHECKS, DEEP_CHECKS, OBJECT_CHECKS, Failure, Report
from transferd.report.seal import fingerprint
from transferd.sources.open import is_postgres
from transferd.stores.base import Store
from transferd.util.extras import needs
from transferd.verify.deep import DeepCheck
from transferd.verify.deepchanges import open_changes
from transferd.verify.directory import SourceComparison
from transferd.verify.inventory import Inventory, Ref
from transferd.verify.manifests import Trusted, check_manifests, check_seen, utc
from transferd.verify.objects import Digest, ObjectReader, Throughput, default_workers, judge
from transferd.verify.seen import SeenState

if TYPE_CHECKING:
    from transferd.verify.postgresql import PgComparison

LIST_BATCH = 1000
OBJECT_LIST_MAX_SIZE = 9 + OBJECT_LIST_MAX_ENTRIES * OBJECT_LIST_ENTRY_SIZE
CHANGE_LIST_MAX_SIZE = 9 + CHANGE_LIST_MAX_ENTRIES * CHANGE_LIST_ENTRY_SIZE
T = TypeVar("T")


@dataclass
class VerifyOptions:
    seen: SeenState | None = None
    """Where manifests seen before are remembered; None checks no rollback (tests, dry runs)."""
    workers: int = 0
    """Hashing threads; 0 means one per core."""
    identity: RecipientIdentity | None = None
    """Needed by ``deep`` and ``against``: the catalog and chunks are encrypted."""
    deep: bool = False
    against: str | None = None
    """A source directory, or a PostgreSQL database (postgresql://…), to compare the copy with."""
    against_password_file: Path | None = None
    """The password of a PostgreSQL ``against`` (else the URL, PGPASSWORD or ~/.pgpass)."""
    clock: Callable[[], float] = time.time
    temp_dir: str | None = None
    throughput: Throughput | None = None
    """Updated as objects are read, for a progress display."""


async def verify_copy(
    store: Store, job: str, sender: SenderPublicKey, options: VerifyOptions | None = None
) -> Report:
    """Verify job ``job`` in ``store``; the report says what holds and lists every failure."""
    options = options or VerifyOptions()
    if (options.deep or options.against) and options.identity is None:
        raise ValueError("deep and against need an identity")
    started = time.monotonic()
    report = Report(
        job=job,
        store=store.description,
        sender=sender.to_text(),
        sender_fingerprint=fingerprint(sender),
        started=utc(options.clock()),
        tool_version=__version__,
        deep=options.deep,
        against=options.against,
    )
    workers = options.workers or default_workers()
    comparison = _comparison(options)
    if comparison is not None and not isinstance(comparison, SourceComparison):
        report.against = comparison.description  # a URL without its password
    reader = ObjectReader(store, job, workers, options.throughput)
    inventory = Inventory(options.temp_dir)
    try:
        trusted = await check_manifests(store, job, sender, report)
        if trusted is not None and not report.manifests:
            seen = options.seen.for_job_name(store.description, job) if options.seen else None
            if seen is None:
                raise JobNotFoundError(
                    f"job {job} has no manifest at {store.description}",
                    hint="check the job name and the store (transferd jobs list)",
                    job=job,
                    store=store.description,
                )
        if trusted is None:
            for check in (*OBJECT_CHECKS, *DEEP_CHECKS, *AGAINST_CHECKS):
                report.skip(check, "the store's manifests could not be listed")
        else:
            key = _unwrap(trusted, options.identity)
            check_seen(report, store, job, trusted, options.seen, options.clock)
            await _check_objects(store, job, trusted, report, reader, inventory)
            _read_rate(report, reader)
            if options.deep or comparison is not None:
                opened = time.monotonic()
                await _with_key(store, trusted, key, report, workers, options.deep, comparison)
                seconds = max(time.monotonic() - opened, 1e-6)
                plain = report.counts.get("plain_bytes_opened", 0)
                report.throughput["deep_ms"] = int(seconds * 1000)
                report.throughput["plain_bytes_per_second"] = int(plain / seconds)
    finally:
        reader.close()
        inventory.close()
        if comparison is not None:
            comparison.close()
    if "read_ms" not in report.throughput:
        _read_rate(report, reader)
    report.finished = utc(options.clock())
    report.duration_ms = int((time.monotonic() - started) * 1000)
    return report


def _read_rate(report: Report, reader: ObjectReader) -> None:
    """Objects and bytes read without the key, and their rate over that phase alone."""
    tp = reader.throughput
    seconds = max(time.monotonic() - tp.started, 1e-6)
    report.counts["objects_read"] = tp.objects
    report.counts["bytes_read"] = tp.bytes
    report.throughput.update(
        objects_per_second=int(tp.objects / seconds),
        bytes_per_second=int(tp.bytes / seconds),
        read_ms=int(seconds * 1000),
    )


def _comparison(options: VerifyOptions) -> SourceComparison | PgComparison | None:
    if options.against is None:
        return None
    if is_postgres(options.against):
        with needs("postgres"):  # asyncpg: only when needed
            from transferd.verify.postgresql import PgComparison

        return PgComparison(options.against, password_file=options.against_password_file)
    return SourceComparison(options.against, options.temp_dir)


def _unwrap(trusted: Trusted, identity: RecipientIdentity | None) -> JobKey | None:
    """The job key of the newest trusted manifest; NotARecipientError (exit 12) is raised, not
    reported: a wrong identity says nothing about the copy."""
    newest = trusted.newest
    if identity is None or newest is None:
        return None
    return unwrap_key(newest, identity)


async def _with_key(
    store: Store,
    trusted: Trusted,
    key: JobKey | None,
    report: Report,
    workers: int,
    deep: bool,
    comparison: SourceComparison | PgComparison | None,
) -> None:
    newest = trusted.newest
    if newest is None or key is None:
        for check_id in (*DEEP_CHECKS, *AGAINST_CHECKS):
            report.skip(check_id, "no manifest could be trusted")
        return
    check = DeepCheck(
        store, newest, key, report, workers=workers, open_chunks=deep,
        on_entry=comparison.add if comparison is not None else None,
    )  # fmt: skip
    await check.run()
    if deep and newest.body.changes:  # a follow copy: its changes are chunks too
        await open_changes(store, newest, key, report)
    if comparison is None:
        return
    if not check.complete:
        report.skip("matches-source", "the catalog could not be read to its end")
    elif isinstance(comparison, SourceComparison):
        await comparison.compare(report, workers)
    else:  # a database: the rows of some tables may have to be read from the copy
        await comparison.compare(
            report, workers, lambda: JobReader(store, newest, key, workers=workers)
        )


# --- objects ---------------------------------------------------------------------------------


async def _check_objects(
    store: Store,
    job: str,
    trusted: Trusted,
    report: Report,
    reader: ObjectReader,
    inventory: Inventory,
) -> None:
    try:
        batch: list[tuple[str, int]] = []
        async for item in store.list_objects(job):
            batch.append(item)
            if len(batch) >= LIST_BATCH:
                inventory.add_listed(batch)
                batch = []
        inventory.add_listed(batch)
    except StoreError as e:
        report.fail(Failure("unreadable", f"the store's objects could not be listed: {e}"))
        for check in OBJECT_CHECKS:
            report.skip(check, "the store's objects could not be listed")
        return
    lists_ok = await _check_object_lists(trusted, report, reader, inventory)
    reader.throughput.total_bytes = inventory.counts()[2]
    await reader.check_all(inventory.to_check(), inventory, report.fail)
    for ref in inventory.missing():
        report.fail(
            Failure(
                "missing",
                f"{ref.kind} {ref.name} (manifest {ref.manifest}) is not in the store",
                object=ref.name,
                object_kind=ref.kind,
                manifest=ref.manifest,
                expected={"size": ref.size, "sha256": ref.name},
            )
        )
    listed, referenced, referenced_bytes = inventory.counts()
    report.count("objects_listed", listed)
    report.count("objects_referenced", referenced)
    report.count("bytes_referenced", referenced_bytes)
    signed_objects, signed_bytes = _signed_objects(trusted)
    report.count("objects_signed", signed_objects)
    report.count("bytes_signed", signed_bytes)
    if not lists_ok:
        report.skip(
            "no-extra-objects",
            "an object list could not be verified, so the packs it names are unknown; "
            "objects no other list names were checked against their own names only",
        )
    await reader.check_unnamed(inventory.extra(), report.fail, extra=lists_ok)
    manifests = len(trusted.manifests)
    tp = reader.throughput
    report.notes.update(
        {
            "store-readable": f"{tp.objects:,} objects read, {tp.bytes:,} bytes",
            "objects-present": f"{referenced:,} objects named by {manifests} manifest"
            + ("s" if manifests != 1 else ""),
            "objects-complete": f"{referenced:,} objects",
            "objects-intact": f"{tp.objects:,} objects hashed, {tp.bytes:,} bytes",
            "no-extra-objects": f"{listed:,} objects in the store, each named by a manifest",
        }
    )


def _signed_objects(trusted: Trusted) -> tuple[int, int]:
    """Objects (and their bytes) the trusted manifests name by their signed text alone: their
    catalog and object-list segments, and the packs the newest one's totals count. Unlike the
    objects named (which needs the object lists), this holds when a list itself is missing."""
    segments = {r.name: r.size for m in trusted.manifests
                for r in (*m.body.catalog, *m.body.object_lists)}  # fmt: skip
    newest = trusted.newest
    packs, packed = (0, 0) if newest is None else (
        newest.body.totals.objects, newest.body.totals.stored_bytes
    )  # fmt: skip
    return len(segments) + packs, sum(segments.values()) + packed


async def _check_object_lists(
    trusted: Trusted, report: Report, reader: ObjectReader, inventory: Inventory
) -> bool:
    """Check and decode every object-list segment, adding the packs they name to the
    inventory; True when every segment could be verified. Also checks each manifest's totals."""
    summaries: dict[str, tuple[int, int] | None] = {}
    changes_seen: dict[str, list[ChangeRef] | None] = {}
    for signed in trusted.referencing:
        body = signed.body
        seq = body.sequence
        for ref in body.catalog:
            inventory.add_ref(ref.name, ref.size, "catalog", seq)
        for ref in body.object_lists:
            if ref.name not in summaries:
                inventory.add_ref(ref.name, ref.size, "object-list", seq)
                summaries[ref.name] = await _check_object_list(
                    Ref(ref.name, ref.size, "object-list", seq), report, reader, inventory
                )
        for ref in body.changes or ():  # a follow manifest's change lists (SPEC 11.5)
            if ref.name not in changes_seen:
                inventory.add_ref(ref.name, ref.size, "change-list", seq)
                changes_seen[ref.name] = await _check_change_list(
                    Ref(ref.name, ref.size, "change-list", seq), report, reader, inventory
                )
        _check_change_chain(body, changes_seen, report)
        parts = [summaries[r.name] for r in body.object_lists]
        if any(p is None for p in parts):
            report.skip("manifest-totals", "an object list could not be verified")
            continue
        count = sum(p[0] for p in parts if p is not None)
        size = sum(p[1] for p in parts if p is not None)
        if (count, size) != (body.totals.objects, body.totals.stored_bytes):
            report.fail(
                Failure(
                    "inconsistent",
                    f"manifest {seq} totals say {body.totals.objects} packs of "
                    f"{body.totals.stored_bytes} bytes; its object lists name {count} of {size}",
                    manifest=seq,
                )
            )
    n = len(trusted.manifests)
    report.notes["manifest-totals"] = f"{n} manifest{'s' if n != 1 else ''}"
    newest = trusted.newest
    if newest is not None and newest.body.changes:
        entries = [e for r in newest.body.changes for e in changes_seen.get(r.name) or []]
        report.count("change_segments", len(entries))
        if entries:
            last = entries[-1]
            report.notes["manifest-totals"] += (
                f"; {len(entries):,} change segments, WAL from {lsn_text(entries[0].start_lsn)} to "
                f"{lsn_text(last.end_lsn)} without a gap"
                + (", cut over" if last.cutover else ", not cut over yet")
            )
    lists_ok = all(s is not None for s in summaries.values())
    return lists_ok and all(c is not None for c in changes_seen.values())


async def _check_change_list(
    ref: Ref, report: Report, reader: ObjectReader, inventory: Inventory
) -> list[ChangeRef] | None:
    """The change segments a verified change list names, added to the inventory; None when it
    fails (reported)."""
    entries = await _read_list(ref, report, reader, inventory, CHANGE_LIST_MAX_SIZE,
                               changes.decode_list)  # fmt: skip
    if entries is not None:
        inventory.add_refs((e.name, e.size, "change-segment", ref.manifest) for e in entries)
    return entries


def _check_change_chain(
    body: ManifestBody, seen: dict[str, list[ChangeRef] | None], report: Report
) -> None:
    """Across a manifest's change lists: one unbroken succession of WAL ranges (SPEC 11.5)."""
    checker = changes.ChainChecker()
    try:
        for ref in body.changes or ():
            entries = seen.get(ref.name)
            if entries is None:
                return  # that list failed, reported
            checker.feed(entries)
    except FormatError as e:
        report.fail(Failure("inconsistent", f"manifest {body.sequence}: {e.message}",
                            manifest=body.sequence))  # fmt: skip


async def _check_object_list(
    ref: Ref, report: Report, reader: ObjectReader, inventory: Inventory
) -> tuple[int, int] | None:
    """(packs, bytes) a verified object-list segment names; None when it fails (reported)."""
    packs = await _read_list(ref, report, reader, inventory, OBJECT_LIST_MAX_SIZE,
                             objectlist.decode_segment)  # fmt: skip
    if packs is None:
        return None
    inventory.add_refs((p.name, p.size, "pack", ref.manifest) for p in packs)
    return len(packs), sum(p.size for p in packs)


async def _read_list(
    ref: Ref,
    report: Report,
    reader: ObjectReader,
    inventory: Inventory,
    max_size: int,
    decode: Callable[[bytes], list[T]],
) -> list[T] | None:
    """A public list segment (object list or change list) read whole, checked against its
    signed size and SHA-256 and decoded; None when any step fails (reported)."""
    listed = inventory.listed_size(ref.name)
    if listed is None:
        return None  # reported with every other missing object
    inventory.mark_checked(ref.name)
    if listed > max_size:  # never read more than a list can be
        report.fail(
            Failure(
                "altered",
                f"{ref.kind} {ref.name} (manifest {ref.manifest}) is {listed} bytes, "
                f"signed as {ref.size}",
                object=ref.name,
                object_kind=ref.kind,
                manifest=ref.manifest,
                expected={"size": ref.size, "sha256": ref.name},
                actual={"size": listed},
            )
        )
        return None
    try:
        data = await reader.read_whole(ref.name, listed)
    except ObjectNotFoundError:
        report.fail(Failure("missing", f"{ref.kind} {ref.name} disappeared", object=ref.name))
        return None
    except StoreError as e:
        report.fail(Failure("unreadable", f"{ref.kind} {ref.name} could not be read: {e.message}"))
        return None
    located = Ref(ref.name, ref.size, ref.kind, ref.manifest, listed)
    failure = judge(located, Digest(len(data), hashlib.sha256(data).hexdigest()), inventory)
    if failure is not None:
        report.fail(failure)
        return None
    try:
        return decode(data)
    except FormatError as e:
        report.fail(Failure("inconsistent", f"{ref.kind} {ref.name}: {e.message}", object=ref.name))
        return None
