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
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from transferd.core.jobkey import Stanza, wrap
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
    if not adding and not removing:
        raise ConfigError("nothing to change: give --add-recipient or --remove-recipient")
    for text in {t for t in adding if adding.count(t) > 1} | {
        t for t in removing if removing.count(t) > 1
    }:
        raise ConfigError(f"{text} is given twice")
    for text in adding:
        if text in removing:
            raise ConfigError(f"{text} is both added and removed")
        if text in held:
            raise ConfigError(f"{text} is already a recipient of job {job}")
    for text in removing:
        if text not in held:
            raise ConfigError(
                f"{text} is not a recipient of job {job}",
                hint="its recipients are " + ", ".join(held),
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
) -> RekeyResult:
    """Publish manifest N+1 of ``job`` with the recipients changed; returns both manifests."""
    previous = await newest_manifest(store, job, sender.public(), None)
    if previous is None:
        raise JobNotFoundError(
            f"job {job} has no manifest at {store.description}", job=job, store=store.description
        )
    key = unwrap_key(previous, identity)
    stanzas = new_stanzas(
        list(previous.body.recipients), add, remove, lambda r: wrap(key, r, rng(32)), job
    )
    body = replace(
        previous.body,
        sequence=previous.body.sequence + 1,
        created=created,
        previous=previous.digest,
        recipients=tuple(stanzas),
    )
    signed = await put_manifest(store, body, sender)
    return RekeyResult(previous, signed, [r.to_text() for r in add], [r.to_text() for r in remove])
