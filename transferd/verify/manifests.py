"""Verify, step 1: the chain of signed manifests, and rollback against what was seen before.

Every manifest 1..N must be signed by the expected sender, stored under its own number, name this
job, and follow the one before it (same job id, next sequence, ``previous`` = SHA-256 of the
stored bytes of the one before). A gap, a manifest that does not parse, or one by another key is
a failure; the manifests that pass are *trusted*, and only their references count in the object
checks. Then the newest trusted manifest is compared with the newest this verifier saw before at
this store (verify/seen.py) and recorded: the one attack the chain alone cannot show is a store
serving an older, validly signed state.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from transferd.core import manifest
from transferd.core.keys import SenderPublicKey
from transferd.core.manifest import SignedManifest
from transferd.errors import FormatError, IntegrityError, ObjectNotFoundError, StoreError
from transferd.report.model import Failure, Report
from transferd.stores.base import Store
from transferd.verify.seen import Seen, SeenState


@dataclass
class Trusted:
    manifests: list[SignedManifest]
    job_id: str | None

    @property
    def newest(self) -> SignedManifest | None:
        return self.manifests[-1] if self.manifests else None


def utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


async def check_manifests(
    store: Store, job: str, sender: SenderPublicKey, report: Report
) -> Trusted | None:
    """Check signatures and the chain; None when the manifests could not even be listed."""
    try:
        sequences = await store.list_manifests(job)
    except StoreError as e:
        report.fail(Failure("unreadable", f"the store's manifests could not be listed: {e}"))
        return None
    report.count("manifests", len(sequences))
    if not sequences:
        report.skip("manifest-signatures", "the store holds no manifest for this job")
        return Trusted([], None)
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
    return Trusted(trusted, report.job_id)


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


def check_seen(
    report: Report,
    store: Store,
    job: str,
    trusted: Trusted,
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
