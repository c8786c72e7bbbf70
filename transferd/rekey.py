"""Change who can decrypt a job without re-sending a byte of it: manifest N+1 with new stanzas.

The job key is unwrapped with one current recipient's identity from the newest manifest, checked
to be signed by the sender; the new manifest keeps the stanzas of every recipient who stays
exactly as they are (their ephemeral keys were drawn once; nothing about them changes), wraps the
key afresh for each added recipient with a new random ephemeral key, and names the same object
lists and catalog, chained to manifest N by its hash. No chunk, pack or catalog segment changes,
so the host receives one small manifest.

A removed recipient who kept the job key (or the plaintext) can still read what was stored under
it: rekey controls who can open the copy from now on, not what someone already opened
(protocol/THREATS.md). Re-encrypting under a new job key is a new send.

Moving a job to post-quantum recipients (add a hybrid ``tdrpq1…`` key, remove the classic
``tdr1…`` one) is such a rekey, with the same limit: the older manifests keep their X25519 stanzas
of the same job key, so the move protects the copy only if none of them was ever recorded; the
host always holds them (protocol/THREATS.md section 4). ``RekeyResult.classic_removed`` says when
that applies, so the command can say it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from transferd.core.jobkey import Stanza, post_quantum_check, wrap
from transferd.core.keys import RecipientIdentity, RecipientKey, SenderSecretKey
from transferd.core.manifest import SignedManifest
from transferd.errors import ConfigError, JobNotFoundError
from transferd.read.reader import unwrap_key
from transferd.send.publish import newest_manifest, put_manifest
from transferd.stores.base import Store


@dataclass(frozen=True)
class RekeyResult:
    previous: SignedManifest
    manifest: SignedManifest
    added: list[str]
    removed: list[str]
    classic_removed: list[RecipientKey]
    """Classic (X25519) recipients removed: their stanzas remain in the older manifests."""
    classic_kept: str | None
    """The warning about classic recipients the new manifest still has, if any."""


def new_stanzas(
    current: list[Stanza],
    add: list[RecipientKey],
    remove: list[RecipientKey],
    wrap_to: Callable[[RecipientKey], Stanza],
    job: str,
) -> list[Stanza]:
    """The stanza set after removing and adding; refuses every change that makes no sense."""
    held = [s.recipient.to_text() for s in current]
    adding = [r.to_text() for r in add]
    removing = [r.to_text() for r in remove]
    shown = {r.to_text(): r.display() for r in [*add, *remove, *(s.recipient for s in current)]}
    if not adding and not removing:
        raise ConfigError("nothing to change: give --add-recipient or --remove-recipient")
    for text in {t for t in adding if adding.count(t) > 1} | {
        t for t in removing if removing.count(t) > 1
    }:
        raise ConfigError(f"{shown[text]} is given twice")
    for text in adding:
        if text in removing:
            raise ConfigError(f"{shown[text]} is both added and removed")
        if text in held:
            raise ConfigError(f"{shown[text]} is already a recipient of job {job}")
    for text in removing:
        if text not in held:
            raise ConfigError(
                f"{shown[text]} is not a recipient of job {job}",
                hint="its recipients are " + ", ".join(shown[t] for t in held),
            )
    kept = [s for s in current if s.recipient.to_text() not in removing]
    if not kept and not adding:
        raise ConfigError(
            f"refusing to remove the last recipient of job {job}: nobody could read it",
            hint="add the new recipient in the same command (--add-recipient)",
        )
    unique = {r.to_text(): r for r in add}
    return kept + [wrap_to(unique[t]) for t in adding]


async def rekey(
    *,
    store: Store,
    job: str,
    identity: RecipientIdentity,
    sender: SenderSecretKey,
    add: list[RecipientKey],
    remove: list[RecipientKey],
    created: str,
    rng: Callable[[int], bytes] = os.urandom,
    require_pq: bool = False,
) -> RekeyResult:
    """Publish manifest N+1 of ``job`` with the recipients changed; returns both manifests.
    ``require_pq``: refuse a new recipient set that keeps a classic-only (X25519) recipient."""
    previous = await newest_manifest(store, job, sender.public(), None)
    if previous is None:
        raise JobNotFoundError(
            f"job {job} has no manifest at {store.description}", job=job, store=store.description
        )
    key = unwrap_key(previous, identity)
    stanzas = new_stanzas(
        list(previous.body.recipients), add, remove, lambda r: wrap(key, r, rng(32)), job
    )
    classic_kept = post_quantum_check(job, stanzas, required=require_pq)
    body = replace(
        previous.body,
        sequence=previous.body.sequence + 1,
        created=created,
        previous=previous.digest,
        recipients=tuple(stanzas),
    )
    signed = await put_manifest(store, body, sender)
    return RekeyResult(
        previous,
        signed,
        [r.to_text() for r in add],
        [r.to_text() for r in remove],
        classic_removed=[r for r in remove if not r.post_quantum],
        classic_kept=classic_kept,
    )
