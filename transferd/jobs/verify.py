"""Check a stored copy against its signed manifests, without the decryption key.

What a holder of the sender's public key can prove (protocol/REPORT.md, DESIGN-BRIEF "Manifest"),
in the order it is checked:

1. every manifest 1..N is signed by the expected sender, is stored under its own number, names
   this job, and follows the one before it (same job id, next sequence, ``previous`` = SHA-256 of
   the stored bytes of the one before);
2. the newest is not older than (nor different from) the newest this verifier saw before at this
   store (jobs/seen.py): the one attack the chain alone cannot show is a store serving an old,
   validly signed state;
3. every object a trusted manifest names (its object-list and catalog segments, and every pack
   its object lists name) is in the store, is not shorter than signed, and hashes to its name;
   each manifest's totals agree with its object lists;
4. the store holds nothing else for the job.

A manifest that fails (1) is not trusted: objects only it names count as extra. Nothing stops at
the first failure; every failure found goes into the report, whose categories give the verdict.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from transferd import __version__
from transferd.core import manifest, objectlist
from transferd.core.constants import OBJECT_LIST_ENTRY_SIZE, OBJECT_LIST_MAX_ENTRIES
from transferd.core.keys import SenderPublicKey
from transferd.core.manifest import SignedManifest
from transferd.errors import FormatError, IntegrityError, JobNotFoundError, StoreError
from transferd.jobs.inventory import Inventory, Ref
from transferd.jobs.objectcheck import (
    Digest,
    ObjectReader,
    Throughput,
    default_workers,
    judge,
)
from transferd.jobs.seen import Seen, SeenState
from transferd.report.model import OBJECT_CHECKS, Failure, Report
from transferd.report.seal import fingerprint
from transferd.stores.base import ObjectNotFoundError, Store

LIST_BATCH = 1000
OBJECT_LIST_MAX_SIZE = 9 + OBJECT_LIST_MAX_ENTRIES * OBJECT_LIST_ENTRY_SIZE


@dataclass
class VerifyOptions:
    seen: SeenState | None = None
    """Where manifests seen before are remembered; None checks no rollback (tests, dry runs)."""
    workers: int = 0
    """Hashing threads; 0 means one per core."""
    clock: Callable[[], float] = time.time
    temp_dir: str | None = None
    throughput: Throughput | None = None
    """Updated as objects are read, for a progress display."""


@dataclass
class _Trusted:
    manifests: list[SignedManifest]
    job_id: str | None


async def verify_copy(
    store: Store, job: str, sender: SenderPublicKey, options: VerifyOptions | None = None
) -> Report:
    """Verify job ``job`` in ``store``; the report says what holds and lists every failure."""
    options = options or VerifyOptions()
    started = time.monotonic()
    report = Report(
        job=job,
        store=store.description,
        sender=sender.to_text(),
        sender_fingerprint=fingerprint(sender),
        started=utc(options.clock()),
        tool_version=__version__,
    )
    reader = ObjectReader(store, job, options.workers or default_workers(), options.throughput)
    inventory = Inventory(options.temp_dir)
    try:
        trusted = await _check_manifests(store, job, sender, report)
        if trusted is not None and not report.manifests:
            seen = options.seen.for_job_name(store.description, job) if options.seen else None
            if seen is None:
                raise JobNotFoundError(
                    f"job {job} has no manifest at {store.description}",
                    hint="check the job name and the store (transferd jobs list)",
                )
        if trusted is not None:
            _check_seen(report, store, job, trusted, options.seen, options.clock)
            await _check_objects(store, job, trusted, report, reader, inventory)
        else:
            for check in OBJECT_CHECKS:
                report.skip(check, "the store's manifests could not be listed")
    finally:
        reader.close()
        inventory.close()
    tp = reader.throughput
    seconds = max(time.monotonic() - tp.started, 1e-6)
    report.count("objects_read", tp.objects)
    report.count("bytes_read", tp.bytes)
    report.throughput = {
        "objects_per_second": int(tp.objects / seconds),
        "bytes_per_second": int(tp.bytes / seconds),
        "read_ms": int(seconds * 1000),
    }
    report.finished = utc(options.clock())
    report.duration_ms = int((time.monotonic() - started) * 1000)
    return report


def utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


# --- manifests -------------------------------------------------------------------------------


async def _check_manifests(
    store: Store, job: str, sender: SenderPublicKey, report: Report
) -> _Trusted | None:
    """Check signatures and the chain; None when the manifests could not even be listed."""
    try:
        sequences = await store.list_manifests(job)
    except StoreError as e:
        report.fail(Failure("unreadable", f"the store's manifests could not be listed: {e}"))
        return None
    report.count("manifests", len(sequences))
    if not sequences:
        report.skip("manifest-signatures", "the store holds no manifest for this job")
        return _Trusted([], None)
    trusted: list[SignedManifest] = []
    previous: SignedManifest | None = None
    """The manifest stored as the number before this one, when it parsed."""
    previous_number = 0
    for number in sequences:
        entry: dict[str, object] = {"sequence": number, "trusted": False}
        report.manifests.append(entry)
        if number != previous_number + 1:
            first, last = previous_number + 1, number - 1
            which = f"{first}" if first == last else f"{first} to {last}"
            report.fail(
                Failure(
                    "manifest-missing",
                    f"manifest {which} of job {job} is missing from the store",
                    manifest=first,
                )
            )
            previous = None
        previous_number = number
        current = await _read_manifest(store, job, number, sender, report, entry)
        # The link to the previous manifest is checked only when both ends are there and this
        # one is stored under its own number; every other case is already a failure above.
        if current is not None and current.body.sequence == number:
            if number == 1 or previous is not None:
                try:
                    manifest.check_succession(previous, current)
                except IntegrityError as e:
                    report.fail(Failure("chain", e.message, manifest=number))
            if entry["trusted"]:
                trusted.append(current)
        previous = current
    job_ids = {m.body.job_id for m in trusted}
    report.job_id = trusted[-1].body.job_id if trusted else None
    if len(job_ids) > 1:
        report.notes["manifest-chain"] = f"job ids seen: {', '.join(sorted(job_ids))}"
    if trusted:
        report.notes["manifest-signatures"] = (
            f"{len(trusted)} manifest{'s' if len(trusted) != 1 else ''} by {sender}"
        )
        report.notes["manifest-chain"] = f"manifests 1 to {trusted[-1].body.sequence}"
    return _Trusted(trusted, report.job_id)


async def _read_manifest(
    store: Store,
    job: str,
    number: int,
    sender: SenderPublicKey,
    report: Report,
    entry: dict[str, object],
) -> SignedManifest | None:
    """The manifest stored as ``number`` if it parses; ``entry["trusted"]`` says whether it is
    by ``sender``, of this job, and numbered as stored."""
    try:
        data = await store.get_manifest(job, number)
    except ObjectNotFoundError:
        report.fail(
            Failure("manifest-missing", f"manifest {number} disappeared while being verified")
        )
        return None
    except StoreError as e:
        report.fail(Failure("unreadable", f"manifest {number} could not be read: {e.message}"))
        return None
    entry["sha256"] = hashlib.sha256(data).hexdigest()
    try:
        parsed = manifest.parse(data)
    except IntegrityError as e:
        report.fail(Failure("signature", f"manifest {number}: {e.message}", manifest=number))
        return None
    except FormatError as e:
        report.fail(Failure("manifest-format", f"manifest {number}: {e.message}", manifest=number))
        return None
    body = parsed.body
    entry["created"] = body.created
    entry["job_id"] = body.job_id
    if body.sender != sender.to_text():
        report.fail(
            Failure(
                "signature",
                f"manifest {number} is signed by {body.sender}, expected {sender}",
                manifest=number,
            )
        )
    elif body.sequence != number:
        report.fail(
            Failure(
                "rollback",
                f"manifest stored as {number} of job {job} is manifest {body.sequence}: "
                "an older manifest was put in place of a newer one",
                manifest=number,
            )
        )
    elif body.job != job:
        report.fail(
            Failure("chain", f"manifest {number} belongs to job {body.job}", manifest=number)
        )
    else:
        entry["trusted"] = True
    return parsed


def _check_seen(
    report: Report,
    store: Store,
    job: str,
    trusted: _Trusted,
    seen_state: SeenState | None,
    clock: Callable[[], float],
) -> None:
    if seen_state is None:
        report.skip("not-rolled-back", "no seen-state file was used")
        return
    newest = trusted.manifests[-1] if trusted.manifests else None
    if newest is None:
        seen = seen_state.for_job_name(store.description, job)
    else:
        seen = seen_state.for_job_id(store.description, newest.body.job_id)
    if seen is not None:
        report.seen_before = {
            "sequence": seen.sequence,
            "sha256": seen.sha256,
            "recorded": seen.updated,
        }
    if newest is None:
        if seen is not None:
            report.fail(
                Failure(
                    "rollback",
                    f"job {job} has no trusted manifest but manifest {seen.sequence} was seen "
                    f"on {seen.updated}: the store was rolled back",
                )
            )
        return
    if seen is not None:
        try:
            manifest.check_not_rolled_back(newest, seen.sequence)
        except IntegrityError as e:
            report.fail(Failure("rollback", f"{e.message} (seen on {seen.updated})"))
        same = next((m for m in trusted.manifests if m.body.sequence == seen.sequence), None)
        if same is not None and same.digest != seen.sha256:
            report.fail(
                Failure(
                    "rollback",
                    f"manifest {seen.sequence} of job {job} is not the one seen on "
                    f"{seen.updated} (sha256 {seen.sha256}): a manifest was replaced",
                    manifest=seen.sequence,
                )
            )
        report.notes["not-rolled-back"] = (
            f"newest manifest {newest.body.sequence}, seen before: {seen.sequence}"
        )
    else:
        report.notes["not-rolled-back"] = (
            f"first verify of this job at this store: manifest {newest.body.sequence} recorded"
        )
    seen_state.record(
        Seen(
            store=store.description,
            job=job,
            job_id=newest.body.job_id,
            sequence=newest.body.sequence,
            sha256=newest.digest,
            updated=utc(clock()),
        )
    )


# --- objects ---------------------------------------------------------------------------------


async def _check_objects(
    store: Store,
    job: str,
    trusted: _Trusted,
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


async def _check_object_lists(
    trusted: _Trusted, report: Report, reader: ObjectReader, inventory: Inventory
) -> bool:
    """Check and decode every object-list segment, adding the packs they name to the
    inventory; True when every segment could be verified. Also checks each manifest's totals."""
    summaries: dict[str, tuple[int, int] | None] = {}
    for signed in trusted.manifests:
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
    return all(s is not None for s in summaries.values())


async def _check_object_list(
    ref: Ref, report: Report, reader: ObjectReader, inventory: Inventory
) -> tuple[int, int] | None:
    """(packs, bytes) a verified object-list segment names; None when it fails (reported)."""
    listed = inventory.listed_size(ref.name)
    if listed is None:
        return None  # reported with every other missing object
    inventory.mark_checked(ref.name)
    located = Ref(ref.name, ref.size, ref.kind, ref.manifest, listed)
    if listed > OBJECT_LIST_MAX_SIZE:
        report.fail(
            Failure(
                "altered",
                f"object-list {ref.name} (manifest {ref.manifest}) is {listed} bytes, "
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
        report.fail(Failure("missing", f"object-list {ref.name} disappeared", object=ref.name))
        return None
    except StoreError as e:
        report.fail(Failure("unreadable", f"object-list {ref.name} could not be read: {e.message}"))
        return None
    failure = judge(located, Digest(len(data), hashlib.sha256(data).hexdigest()), inventory)
    if failure is not None:
        report.fail(failure)
        return None
    try:
        packs = objectlist.decode_segment(data)
    except FormatError as e:
        report.fail(
            Failure("inconsistent", f"object-list {ref.name}: {e.message}", object=ref.name)
        )
        return None
    inventory.add_refs((p.name, p.size, "pack", ref.manifest) for p in packs)
    return len(packs), sum(p.size for p in packs)
