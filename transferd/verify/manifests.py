"""Verify, step 1: the chain of signed manifests, and rollback against what was seen before.

Every manifest must be signed by the expected sender, stored under its own key, and name this
job. The job's newest version is its *head*: the trusted manifest of highest (epoch, sequence)
(protocol/SPEC.md 12.2; the epoch is 0 for a job sent without leases). From the head back to 1,
each manifest must follow the one its ``previous`` names (same job id and key check, next
sequence, hash-linked, no later epoch): a gap or a broken link is a failure, and these manifests
are the chain. A manifest of a lower epoch than the head that is not on the chain is
*superseded*: written by an agent of a copy that had lost its lease when another took over. It is
listed, not a failure, and its objects count as named (they are signed by the sender). Only
trusted manifests' references count in the object checks. Then the head is compared with the
newest this verifier saw before at this store (verify/seen.py) and recorded: the one attack the
chain alone cannot show is a store serving an older, validly signed state.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from transferd.core import manifest
from transferd.core.keys import SenderPublicKey
from transferd.core.manifest import ManifestKey, SignedManifest
from transferd.errors import FormatError, IntegrityError, ObjectNotFoundError, StoreError
from transferd.report.model import Failure, Report
from transferd.stores.base import Store
from transferd.verify.seen import Seen, SeenState


@dataclass
class Trusted:
    manifests: list[SignedManifest]
    """The chain, from 1 to the head."""
    job_id: str | None
    superseded: list[SignedManifest] = field(default_factory=list)
    """Trusted manifests of lower epochs off the chain (SPEC 12.2): named, not newest."""

    @property
    def newest(self) -> SignedManifest | None:
        return self.manifests[-1] if self.manifests else None

    @property
    def referencing(self) -> list[SignedManifest]:
        """Every trusted manifest whose references count: the chain and the superseded."""
        return self.manifests + self.superseded


def utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(seconds)))


async def check_manifests(
    store: Store, job: str, sender: SenderPublicKey, report: Report
) -> Trusted | None:
    """Check signatures and the chain; None when the manifests could not even be listed."""
    try:
        keys = await store.list_manifests(job)
    except StoreError as e:
        report.fail(Failure("unreadable", f"the store's manifests could not be listed: {e}"))
        return None
    report.count("manifests", len(keys))
    if not keys:
        report.skip("manifest-signatures", "the store holds no manifest for this job")
        return Trusted([], None)
    entries: dict[ManifestKey, dict[str, object]] = {}
    trusted: dict[ManifestKey, SignedManifest] = {}
    for key in keys:
        entry: dict[str, object] = {"sequence": key.sequence, "trusted": False}
        if key.epoch:
            entry["epoch"] = key.epoch
        report.manifests.append(entry)
        entries[key] = entry
        current = await _read_manifest(store, job, key, sender, report, entry)
        if current is not None and entry["trusted"]:
            trusted[key] = current
    head = manifest.head_of(list(trusted))
    if head is None:
        return Trusted([], None)
    chain = _walk_back(job, trusted, head, {k.sequence for k in keys}, report)
    on_chain = {m.key for m in chain}
    superseded = []
    for key, signed in trusted.items():
        if key in on_chain:
            continue
        if key.epoch < head.epoch:
            entries[key]["superseded"] = True
            superseded.append(signed)
        else:
            report.fail(
                Failure(
                    "chain",
                    f"manifest {key} of job {job} is not in the chain of the newest, "
                    f"manifest {head}",
                    manifest=key.sequence,
                )
            )
    job_ids = {m.body.job_id for m in trusted.values()}
    report.job_id = trusted[head].body.job_id
    if len(job_ids) > 1:
        report.notes["manifest-chain"] = f"job ids seen: {', '.join(sorted(job_ids))}"
    n = len(trusted)
    report.notes["manifest-signatures"] = f"{n} manifest{'s' if n != 1 else ''} by {sender}"
    note = f"manifests 1 to {head}"
    if superseded:
        names = ", ".join(str(m.key) for m in superseded)
        note += f"; superseded (written after the job was taken over): {names}"
    report.notes["manifest-chain"] = note
    return Trusted(chain, report.job_id, superseded)


def _walk_back(
    job: str,
    trusted: dict[ManifestKey, SignedManifest],
    head: ManifestKey,
    stored: set[int],
    report: Report,
) -> list[SignedManifest]:
    """The chain from 1 to ``head`` as far as it holds, each link checked; a gap or a broken
    link is reported and ends the walk."""
    by_digest = {m.digest: m for m in trusted.values()}
    current = trusted[head]
    chain = [current]
    while current.body.sequence > 1:
        wanted = current.body.sequence - 1
        previous = by_digest.get(current.body.previous or "")
        if previous is None or previous.body.sequence != wanted:
            if wanted not in stored:
                report.fail(
                    Failure(
                        "manifest-missing",
                        f"manifest {wanted} of job {job} is missing from the store",
                        manifest=wanted,
                    )
                )
            else:
                report.fail(
                    Failure(
                        "chain",
                        f"manifest {current.key} of job {job} follows no trusted manifest {wanted}",
                        manifest=current.body.sequence,
                    )
                )
            break
        try:
            manifest.check_succession(previous, current)
        except IntegrityError as e:
            report.fail(Failure("chain", e.message, manifest=current.body.sequence))
            break
        chain.append(previous)
        current = previous
    else:
        try:
            manifest.check_succession(None, current)
        except IntegrityError as e:  # pragma: no cover - sequence 1 has no predecessor
            report.fail(Failure("chain", e.message, manifest=1))
    return list(reversed(chain))


async def _read_manifest(
    store: Store,
    job: str,
    number: ManifestKey,
    sender: SenderPublicKey,
    report: Report,
    entry: dict[str, object],
) -> SignedManifest | None:
    """The manifest stored as ``number`` if it parses; ``entry["trusted"]`` says whether it is
    by ``sender``, of this job, and numbered as stored (sequence and epoch)."""
    at = number.sequence
    try:
        data = await store.get_manifest(job, *number)
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
        report.fail(
            Failure("signature", f"manifest {number}: {e.message}", manifest=number.sequence)
        )
        return None
    except FormatError as e:
        report.fail(
            Failure("manifest-format", f"manifest {number}: {e.message}", manifest=number.sequence)
        )
        return None
    body = parsed.body
    entry["created"] = body.created
    entry["job_id"] = body.job_id
    if body.sender != sender.to_text():
        report.fail(
            Failure(
                "signature",
                f"manifest {number} is signed by {body.sender}, expected {sender}",
                manifest=at,
            )
        )
    elif body.key != number:
        report.fail(
            Failure(
                "rollback",
                f"manifest stored as {number} of job {job} is manifest {body.key}: "
                "an older manifest was put in place of a newer one",
                manifest=at,
            )
        )
    elif body.job != job:
        report.fail(
            Failure(
                "chain", f"manifest {number} belongs to job {body.job}", manifest=number.sequence
            )
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
            manifest.check_not_rolled_back(newest, seen.sequence, seen.epoch)
        except IntegrityError as e:
            report.fail(Failure("rollback", f"{e.message} (seen on {seen.updated})"))
        seen_key = ManifestKey(seen.sequence, seen.epoch)
        same = next((m for m in trusted.referencing if m.key == seen_key), None)
        if same is not None and same.digest != seen.sha256:
            report.fail(
                Failure(
                    "rollback",
                    f"manifest {seen_key} of job {job} is not the one seen on "
                    f"{seen.updated} (sha256 {seen.sha256}): a manifest was replaced",
                    manifest=seen.sequence,
                )
            )
        report.notes["not-rolled-back"] = f"newest manifest {newest.key}, seen before: {seen_key}"
    else:
        report.notes["not-rolled-back"] = (
            f"first verify of this job at this store: manifest {newest.key} recorded"
        )
    seen_state.record(
        Seen(
            store=store.description,
            job=job,
            job_id=newest.body.job_id,
            sequence=newest.body.sequence,
            sha256=newest.digest,
            updated=utc(clock()),
            epoch=newest.body.epoch,
        )
    )
