"""lease_epoch.json: manifests written by an agent of a copy under a lease (SPEC 12.2).

Such a manifest carries its writer's epoch, in its body (``epoch``) and in the name it is stored
under (``<sequence>-<epoch>``); a chain may move to a higher epoch (another agent took the job
over), never back to a lower one. Each vector is one manifest, the name it was found under, and
the manifests before it on its chain.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from common import SENDER, Vector, vector, vector_file
from gen_manifest import JOB, body, digest, sign_text

from transferd.core.manifest import ManifestBody, sign


def _epoch(b: ManifestBody, epoch: int, sequence: int | None = None,
           previous: str | None = None) -> ManifestBody:  # fmt: skip
    return replace(b, epoch=epoch, sequence=sequence or b.sequence,
                   previous=previous if previous is not None else b.previous)  # fmt: skip


def _at(sequence: int, epoch: int) -> dict[str, Any]:
    """Where it was read: jobs/<job>/manifests/<sequence>[-<epoch>]."""
    return {"job": JOB, "sequence": sequence, "epoch": epoch}


def _vector(name: str, comment: str, manifest: str, stored_as: dict[str, Any],
            expect: str = "success", flags: tuple[str, ...] = (),
            **extra: Any) -> Vector:  # fmt: skip
    return vector(name, comment, expect, flags, manifest=manifest, sha256=digest(manifest),
                  expected_sender=SENDER.public().to_text(), stored_as=stored_as,
                  **extra)  # fmt: skip


def _valid(name: str, comment: str, b: ManifestBody, **extra: Any) -> Vector:
    return _vector(name, comment, sign(b, SENDER).decode(), _at(b.sequence, b.epoch),
                   flags=("Deterministic",), body=b.to_json(), sender_secret=SENDER.to_text(),
                   **extra)  # fmt: skip


def generate() -> dict[str, Any]:
    first = _epoch(body(), 3)
    first_text = sign(first, SENDER).decode()
    plain = body()
    plain_text = sign(plain, SENDER).decode()
    taker = _epoch(body(2, digest(first_text)), 5)
    same = _epoch(body(2, digest(first_text)), 3)
    after_plain = _epoch(body(2, digest(plain_text)), 4)
    back = _epoch(body(2, digest(sign(_epoch(body(), 5), SENDER).decode())), 3)
    back_history = [sign(_epoch(body(), 5), SENDER).decode()]
    j = first.to_json()
    fmt = "format failure"
    vectors = [
        _valid("leased_first", "manifest 1 written at epoch 3, stored as <1>-<3>", first,
               history=[]),
        _valid("taken_over", "manifest 2 by the agent that took the job over at epoch 5, on top "
               "of 1 of epoch 3", taker, history=[first_text]),
        _valid("same_epoch", "manifest 2 by the same holder (epoch 3) as 1", same,
               history=[first_text]),
        _valid("leased_after_plain", "a job sent without a lease (epoch 0, no member, name of "
               "20 digits) continued by an agent at epoch 4", after_plain, history=[plain_text]),
        # --- the member ---
        _vector("epoch_zero_written", "epoch 0 written out: absent is the one encoding of 0",
                sign_text(plain.to_json() | {"epoch": 0}), _at(1, 0), fmt,
                ("NonCanonical",)),
        _vector("epoch_a_string", "epoch given as a string", sign_text(j | {"epoch": "3"}),
                _at(1, 3), fmt, ("Malformed",)),
        _vector("epoch_negative", "epoch -3", sign_text(j | {"epoch": -3}), _at(1, 3), fmt,
                ("Bounds",)),
        # --- the name (SPEC 13.1 step 7) ---
        _vector("stored_under_another_epoch", "a manifest of epoch 3 stored as <1>-<5>",
                first_text, _at(1, 5), "integrity failure", ("NameMismatch",)),
        _vector("stored_without_its_epoch", "a manifest of epoch 3 stored as <1>", first_text,
                _at(1, 0), "integrity failure", ("NameMismatch",)),
        _vector("stored_with_an_epoch_it_lacks", "a manifest of epoch 0 stored as <1>-<3>",
                plain_text, _at(1, 3), "integrity failure", ("NameMismatch",)),
        # --- the chain (SPEC 11.4) ---
        _vector("epoch_goes_back", "manifest 2 of epoch 3 on top of 1 of epoch 5: written by a "
                "holder that had lost the job", sign(back, SENDER).decode(), _at(2, 3),
                "rollback", ("Rollback",), history=back_history),
    ]  # fmt: skip
    return vector_file(
        "lease_epoch",
        "A manifest written under a lease (SPEC 12.2) carries 'epoch' (an integer >= 1; absent "
        "means 0, and 0 is never written) and is stored as <sequence, 20 digits>-<epoch, 20 "
        "digits>; without an epoch, as <sequence, 20 digits>. Apply: parse and verify the "
        "manifest as manifest.json does; its job, sequence and epoch must be those of stored_as, "
        "where it was read (integrity failure); when history is given, check the chain from 1 "
        "through history to this one, where an epoch lower than the previous manifest's is a "
        "rollback.",
        vectors,
    )
