"""copy_secret.json and copy_manifest.json: a copy of many jobs (SPEC 4.1 and 12.1).

The copy secret K_copy derives every job's key and id and the copy's id, so that any agent can
take over any job; the copy manifest is the signed, hash-chained root naming every job's newest
manifest. Both are as exact as a job's own key and manifest: a stranger's verify --copy must
derive the same ids and refuse the same manifests.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from typing import Any

from common import CREATED, SENDER, SENDER_OTHER, Vector, det, vector, vector_file
from gen_manifest import digest

from transferd.core import bech32, canonical
from transferd.core.copy import (
    CopyJobRef,
    CopyManifestBody,
    CopySecret,
    render_copy_secret_file,
    sign,
)
from transferd.core.keys import SenderSecretKey

SECRET = CopySecret(det("copy secret"))
COPY = "snds-2026"
JOBS = ("dcir-2019", "dcir-2020", "pmsi-2019")
FIRST_LINE = "transferd-copy v1\n"


def _derived(secret: CopySecret, copy: str, jobs: tuple[str, ...]) -> dict[str, Any]:
    return {
        "copy": copy,
        "copy_id": secret.copy_id(copy),
        "jobs": [
            {"job": j, "job_key": secret.job_key(j).key.hex(), "job_id": secret.job_id(j)}
            for j in jobs
        ],
    }


def generate_secret() -> dict[str, Any]:
    text = SECRET.to_text()
    lower_hrp = bech32.encode("td-secret-other-", SECRET.secret).upper()
    vectors: list[Vector] = [
        vector("derive", "K_copy as text; the copy id and each job's K_job and job_id derived "
               "from it (SPEC 4.1)", text=text, **_derived(SECRET, COPY, JOBS)),
        vector("derive_from_file", "the same secret in the file transferd copy secret writes "
               "(comment lines, then one key line)",
               text=render_copy_secret_file(SECRET, COPY, CREATED),
               **_derived(SECRET, COPY, JOBS[:1])),
        vector("derive_other_secret", "another K_copy gives other ids and keys for the same names",
               text=CopySecret(det("copy secret other")).to_text(),
               **_derived(CopySecret(det("copy secret other")), COPY, JOBS[:1])),
        vector("lower_case", "the key line in lower case", "key failure", ("Case",),
               text=text.lower()),
        vector("checksum_broken", "one character of the key changed", "key failure",
               ("Mistyped",), text=text[:-1] + ("Q" if text[-1] != "Q" else "P")),
        vector("other_kind", "a well-formed bech32 key of another kind", "key failure",
               ("WrongKind",), text=lower_hrp),
        vector("two_key_lines", "a file with two key lines", "key failure", ("Malformed",),
               text=f"{text}\n{text}\n"),
        vector("short_secret", "a checksummed copy secret of 31 bytes", "key failure",
               ("Bounds",), text=bech32.encode("td-secret-copy-", det("short", 31)).upper()),
    ]  # fmt: skip
    return vector_file(
        "copy_secret",
        "K_copy text = bech32 (BIP 173 checksum) of 32 bytes with HRP 'td-secret-copy-', in upper "
        "case; a file holds '#' comment lines and exactly one key line. Derive (SPEC 4.1): "
        "K_job = KDF(K_copy, 'transferd v1 job key' || job), job_id = hex of the first 16 bytes "
        "of KDF(K_copy, 'transferd v1 job id' || job), copy_id = hex of the first 16 bytes of "
        "KDF(K_copy, 'transferd v1 copy id' || copy). Apply: parse text (a file or one line); "
        "compare every derived value.",
        vectors,
    )


def body(sequence: int = 1, previous: str | None = None, sender: SenderSecretKey = SENDER,
         jobs: tuple[CopyJobRef, ...] | None = None, copy_id: str | None = None
         ) -> CopyManifestBody:  # fmt: skip
    if jobs is None:
        jobs = (
            CopyJobRef("dcir-2019", 3, det("job manifest dcir-2019 3").hex()),
            CopyJobRef("dcir-2020"),
            CopyJobRef("pmsi-2019", 1, det("job manifest pmsi-2019 1").hex()),
        )
    return CopyManifestBody(
        copy=COPY, copy_id=copy_id or SECRET.copy_id(COPY), sequence=sequence, created=CREATED,
        previous=previous, sender=sender.public().to_text(), jobs=jobs,
    )  # fmt: skip


def sign_text(body_json: Any, line: bytes | None = None, first: str = FIRST_LINE) -> str:
    """A copy manifest whose signature is valid over whatever it holds."""
    body_line = canonical.dumps(body_json) if line is None else line
    signed = first.encode() + body_line + b"\n"
    signature = base64.b64encode(SENDER.sign(signed)).decode()
    return (signed + f"sig {SENDER.public().to_text()} {signature}\n".encode()).decode()


def _vector(name: str, comment: str, manifest: str, expect: str = "success",
            flags: tuple[str, ...] = (), **extra: Any) -> Vector:  # fmt: skip
    return vector(name, comment, expect, flags, manifest=manifest, sha256=digest(manifest),
                  expected_sender=SENDER.public().to_text(), **extra)  # fmt: skip


def _valid(name: str, comment: str, b: CopyManifestBody, **extra: Any) -> Vector:
    return _vector(name, comment, sign(b, SENDER).decode(), flags=("Deterministic",),
                   body=b.to_json(), sender_secret=SENDER.to_text(), **extra)  # fmt: skip


def _malformed(name: str, comment: str, b: dict[str, Any],
               flags: tuple[str, ...] = ("Malformed",)) -> Vector:  # fmt: skip
    return _vector(name, comment, sign_text(b), "format failure", flags)


def generate() -> dict[str, Any]:
    first = sign(body(), SENDER).decode()
    done = tuple(
        replace(j, sequence=1, sha256=det("job manifest dcir-2020 1").hex()) if j.sequence is None
        else j for j in body().jobs
    )  # fmt: skip
    second_body = body(2, digest(first), jobs=done)
    second = sign(second_body, SENDER).decode()
    j = body().to_json()
    fmt = "format failure"
    job0 = j["jobs"][0]
    vectors = [
        _valid("sequence_1", "the first copy manifest: one job not finished (null sequence and "
               "sha256)", body(), history=[]),
        _valid("sequence_2", "every job finished; previous is the SHA-256 of copy manifest 1",
               second_body, history=[first]),
        _valid("leased_entry", "every job finished, one of them by an agent of a copy under a "
               "lease: its entry names the manifest's epoch (SPEC 12.2)",
               replace(second_body, jobs=(replace(done[0], epoch=7), *done[1:])),
               history=[first]),
        # --- signature ---
        _vector("job_sequence_changed", "a job's manifest number changed after signing",
                first.replace('"sequence":3', '"sequence":4'), "signature failure",
                ("Tampered",)),
        _vector("signed_by_other_sender", "a valid copy manifest of another sender, while the "
                "verifier expects SENDER", sign(body(sender=SENDER_OTHER), SENDER_OTHER).decode(),
                "signature failure", ("WrongKey",)),
        _vector("sig_line_names_other_key", "the body names SENDER; the signature line names "
                "and is made by another key (the error of a job manifest's, SPEC 13.1 step 5)",
                first[: first.index("\nsig ") + 1]
                + (other := sign(body(sender=SENDER_OTHER), SENDER_OTHER).decode())[
                    other.index("\nsig ") + 1 :], "signature failure", ("WrongKey",)),
        _vector("signature_63_bytes", "a signature one byte short", first[: first.rindex(" ") + 1]
                + base64.b64encode(base64.b64decode(first.rsplit(" ", 1)[1])[:63]).decode()
                + "\n", fmt, ("Bounds",)),
        # --- version and layout ---
        _vector("first_line_v2", "first line transferd-copy v2",
                first.replace("transferd-copy v1", "transferd-copy v2"), "unsupported version",
                ("UnknownVersion",)),
        _vector("job_manifest_first_line", "the first line of a job manifest",
                first.replace("transferd-copy v1", "transferd-manifest v1"), fmt,
                ("WrongKind",)),
        _vector("fourth_line", "a line after the signature line", first + "note\n", fmt,
                ("Malformed",)),
        _vector("non_canonical_space", "a space after a colon (signed as is)",
                sign_text(j, line=json.dumps(j, sort_keys=True, separators=(",", ": ")).encode()),
                fmt, ("NonCanonical",)),
        # --- body ---
        _malformed("extra_field", "a field beyond the eight", j | {"comment": "x"}),
        _malformed("copy_id_upper_case", "copy_id in upper case",
                   j | {"copy_id": j["copy_id"].upper()}, ("NonCanonical",)),
        _malformed("created_not_a_date", "created on 30 February: the pattern holds, the "
                   "calendar does not", j | {"created": "2026-02-30T21:00:00Z"}, ("Bounds",)),
        _malformed("jobs_out_of_order", "jobs not in name order",
                   j | {"jobs": [j["jobs"][1], j["jobs"][0], j["jobs"][2]]}),
        _malformed("job_twice", "one job listed twice", j | {"jobs": [job0, *j["jobs"]]}),
        _malformed("job_half_recorded", "a job with a sequence and a null sha256",
                   j | {"jobs": [job0 | {"sha256": None}, *j["jobs"][1:]]}),
        _malformed("job_sha256_short", "a job manifest's SHA-256 of 62 hex digits",
                   j | {"jobs": [job0 | {"sha256": job0["sha256"][:62]}, *j["jobs"][1:]]},
                   ("Bounds",)),
        _malformed("sender_not_a_sender_key", "the sender field holds a copy secret",
                   j | {"sender": SECRET.to_text()}, ("WrongKind",)),
        # --- entries of manifests written under a lease (SPEC 12.2) ---
        _malformed("job_epoch_zero", "a job entry with epoch 0 written out (absent is 0)",
                   j | {"jobs": [job0 | {"epoch": 0}, *j["jobs"][1:]]}, ("NonCanonical",)),
        _malformed("job_epoch_without_sequence", "an epoch on a job not finished",
                   j | {"jobs": [j["jobs"][0], j["jobs"][1] | {"epoch": 2}, j["jobs"][2]]}),
        _malformed("job_epoch_a_string", "a job entry's epoch as a string",
                   j | {"jobs": [job0 | {"epoch": "7"}, *j["jobs"][1:]]}),
        # --- chain ---
        _vector("chain_previous_hash_wrong", "copy manifest 2 names another hash than 1's",
                sign(replace(second_body, previous="00" * 32), SENDER).decode(), "rollback",
                ("Rollback",), history=[first]),
        _vector("chain_other_copy", "copy manifest 2 of another copy id, linked to 1",
                sign(body(2, digest(first), jobs=done, copy_id="ff" * 16), SENDER).decode(),
                "rollback", ("Rollback",), history=[first]),
        _vector("chain_first_not_sequence_1", "copy manifest 2 offered with no history",
                second, "rollback", ("Rollback",), history=[]),
    ]  # fmt: skip
    return vector_file(
        "copy_manifest",
        "copy manifest = 'transferd-copy v1\\n' || canonical JSON body || '\\n' || 'sig ' || "
        "sender || ' ' || base64(Ed25519 signature of the first two lines) || '\\n' (SPEC 12.1). "
        "Apply: parse, check the signature by the sender the body names, check that sender is "
        "expected_sender, and when history is given check the chain from sequence 1 through "
        "history to this one. Sign (Deterministic vectors): sign(body, sender_secret) = manifest.",
        vectors,
    )
