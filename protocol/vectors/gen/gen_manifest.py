"""manifest.json: the signed root of a job version; its signature, canonical form and history."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from typing import Any

from common import (
    CREATED,
    IDENTITY_A,
    IDENTITY_B,
    JOB_ID,
    JOB_KEY,
    OTHER_JOB_KEY,
    SENDER,
    SENDER_OTHER,
    Vector,
    data_repeat,
    det,
    repeat_bytes,
    vector,
    vector_file,
)

from transferd.core import canonical
from transferd.core.constants import MANIFEST_MAX_SIZE
from transferd.core.jobkey import wrap
from transferd.core.keys import SenderSecretKey
from transferd.core.manifest import ManifestBody, Totals, sign
from transferd.core.objectlist import ObjectRef, encode_segment

JOB = "snds-dcir-2026"
FIRST_LINE = "transferd-manifest v1\n"


def body(sequence: int = 1, previous: str | None = None, sender: SenderSecretKey = SENDER,
         recipients: tuple[str, ...] = ("A",), job_id: str = JOB_ID,
         key_check: bytes = JOB_KEY.key_check) -> ManifestBody:  # fmt: skip
    identities = {"A": IDENTITY_A, "B": IDENTITY_B}
    stanzas = tuple(
        wrap(JOB_KEY, identities[r].public(), det(f"manifest ephemeral {sequence} {r}"))
        for r in recipients
    )
    return ManifestBody(
        job=JOB,
        job_id=job_id,
        sequence=sequence,
        created=CREATED,
        previous=previous,
        sender=sender.public().to_text(),
        recipients=stanzas,
        key_check=key_check,
        object_lists=(ObjectRef(det("manifest object list 0"), 9 + 3 * 40),),
        catalog=(ObjectRef(det("manifest catalog 0"), 2_345), ObjectRef(det("catalog 1"), 77)),
        totals=Totals(objects=3, stored_bytes=33_558_658),
    )


def sign_text(body_json: Any, key: SenderSecretKey = SENDER, *, first: str = FIRST_LINE,
              line: bytes | None = None) -> str:  # fmt: skip
    """A manifest whose signature is valid over whatever first line and body line it holds."""
    body_line = canonical.dumps(body_json) if line is None else line
    signed = first.encode() + body_line + b"\n"
    signature = base64.b64encode(key.sign(signed)).decode()
    return (signed + f"sig {key.public().to_text()} {signature}\n".encode()).decode("utf-8")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _vector(name: str, comment: str, manifest: str, expect: str = "success",
            flags: tuple[str, ...] = (), **extra: Any) -> Vector:  # fmt: skip
    return vector(name, comment, expect, flags, manifest=manifest, sha256=digest(manifest),
                  expected_sender=extra.pop("expected_sender", SENDER.public().to_text()),
                  **extra)  # fmt: skip


def _valid(name: str, comment: str, b: ManifestBody, **extra: Any) -> Vector:
    text = sign(b, SENDER).decode()
    return _vector(name, comment, text, flags=("Deterministic",), body=b.to_json(),
                   sender_secret=SENDER.to_text(), **extra)  # fmt: skip


def _malformed(name: str, comment: str, b: dict[str, Any], flags: tuple[str, ...] = ("Malformed",),
               expect: str = "format failure") -> Vector:  # fmt: skip
    return _vector(name, comment, sign_text(b), expect, flags)


def _totals_vectors() -> list[Vector]:
    """SPEC 14 step 5: the packs the object lists name, counted and summed, against totals."""
    sizes = [16_777_300, 16_777_301, 4_000]
    segment = encode_segment(
        [ObjectRef(det(f"manifest totals pack {i}"), size) for i, size in enumerate(sizes)]
    )
    lists = (ObjectRef(hashlib.sha256(segment).digest(), len(segment)),)

    def signed(objects: int, stored: int) -> str:
        b = replace(body(), object_lists=lists, totals=Totals(objects, stored))
        return sign(b, SENDER).decode()

    right = signed(3, sum(sizes))
    return [
        _vector("totals_match_the_object_lists", "the three packs the object list names, "
                "counted and summed, equal totals", right, "success", ("Deterministic",),
                object_list_segments=[segment.hex()],
                body=ManifestBody.from_json(json.loads(right.splitlines()[1])).to_json(),
                sender_secret=SENDER.to_text()),
        _vector("totals_objects_mismatch", "a valid signed manifest whose totals.objects says 4 "
                "where its object list names 3 packs", signed(4, sum(sizes)),
                "integrity failure", ("Bounds",), object_list_segments=[segment.hex()]),
        _vector("totals_stored_bytes_mismatch", "totals.stored_bytes one more than the sum of "
                "the listed pack sizes", signed(3, sum(sizes) + 1), "integrity failure",
                ("Bounds",), object_list_segments=[segment.hex()]),
    ]  # fmt: skip


def _oversize() -> Vector:
    """A manifest one byte above MANIFEST_MAX_SIZE, as a data description."""
    pattern = FIRST_LINE.encode()
    size = MANIFEST_MAX_SIZE + 1
    text = repeat_bytes(pattern, size)
    return vector("manifest_above_max_size", "4 MiB + 1 bytes of 'transferd-manifest v1' lines: "
                  "refused by its size before its first line is read", "format failure",
                  ("Bounds",), manifest=data_repeat(pattern, size),
                  sha256=hashlib.sha256(text).hexdigest(),
                  expected_sender=SENDER.public().to_text())  # fmt: skip


def generate() -> dict[str, Any]:
    first = sign(body(), SENDER).decode()
    second_body = body(2, digest(first))
    second = sign(second_body, SENDER).decode()
    j = body().to_json()
    body_line = canonical.dumps(j)
    sig_at = first.index("\nsig ") + 1
    sig_b64 = first[sig_at:].split(" ")[2].strip()
    sig = base64.b64decode(sig_b64)
    other = sign(body(sender=SENDER_OTHER), SENDER_OTHER).decode()
    fmt, sig_fail = "format failure", "signature failure"
    catalog_hex = det("manifest catalog 0").hex()

    def with_sig(signature: bytes | str) -> str:
        text = signature if isinstance(signature, str) else base64.b64encode(signature).decode()
        return first[:sig_at] + f"sig {SENDER.public().to_text()} {text}\n"

    vectors = [
        _valid("sequence_1", "the first manifest of a job; history [] checks it is sequence 1",
               body(), history=[]),
        _valid("sequence_2", "the next manifest: previous is the SHA-256 of manifest 1",
               second_body, history=[first]),
        _valid("rekey_two_recipients", "manifest 2 wraps K_job to B and A: same objects, "
               "new stanzas", body(2, digest(first), recipients=("B", "A")), history=[first]),
        _valid("newest_seen_equal", "a reader that has seen sequence 2 accepts sequence 2",
               second_body, newest_seen=2),
        _valid("int64_max", "totals.stored_bytes 2^63 - 1, the largest integer of canonical "
               "JSON", replace(body(), totals=Totals(objects=3, stored_bytes=2**63 - 1)),
               history=[]),
        # --- signature ---
        _vector("body_digit_changed", "one digit of totals.stored_bytes changed: still a valid "
                "body, no longer the signed one", first.replace("33558658", "33558659"),
                sig_fail, ("Tampered",)),
        _vector("body_hex_digit_changed", "one hex digit of a catalog SHA-256 changed",
                first.replace(catalog_hex, "%x" % (int(catalog_hex[0], 16) ^ 1) + catalog_hex[1:]),
                sig_fail,
                ("Tampered",)),
        _vector("signature_bit_flipped", "one bit of the signature flipped",
                with_sig(bytes([sig[0] ^ 1]) + sig[1:]), sig_fail, ("Tampered",)),
        _vector("signed_by_other_sender", "a valid manifest of another sender, while the "
                "verifier expects SENDER", other, sig_fail, ("WrongKey",)),
        _vector("sig_line_names_other_key", "the body names SENDER; the signature line names "
                "and is made by another key",
                first[:sig_at] + other[other.index("\nsig ") + 1 :],
                sig_fail, ("WrongKey",)),
        _vector("signature_over_body_only", "the signature covers the body line alone, not the "
                "first line", with_sig(SENDER.sign(body_line + b"\n")), sig_fail,
                ("Malformed",)),
        # --- version ---
        _vector("first_line_v2", "first line transferd-manifest v2",
                first.replace("transferd-manifest v1", "transferd-manifest v2"),
                "unsupported version", ("UnknownVersion",)),
        _vector("body_format_2", "first line v1, body format 2 (signed)",
                sign_text(j | {"format": 2}), "unsupported version", ("UnknownVersion",)),
        # --- format ---
        _vector("not_a_manifest", "a first line of another file type",
                "-----BEGIN PGP SIGNED MESSAGE-----\n" + first[len(FIRST_LINE):], fmt,
                ("Malformed",)),
        _vector("no_newline", "a single line", FIRST_LINE.strip(), fmt, ("Malformed",)),
        _vector("fourth_line", "a line after the signature line", first + "note\n", fmt,
                ("Malformed",)),
        _vector("no_final_newline", "the signature line lacks its newline", first[:-1], fmt,
                ("Malformed",)),
        _vector("sig_line_three_fields_missing", "the signature line lacks the key",
                first[:sig_at] + f"sig {sig_b64}\n", fmt, ("Malformed",)),
        _vector("signature_not_base64", "a signature with a character outside base64",
                with_sig("!" + sig_b64[1:]), fmt, ("Malformed",)),
        _vector("signature_63_bytes", "a signature one byte short", with_sig(sig[:63]), fmt,
                ("Bounds",)),
        _vector("non_canonical_space", "a space after a colon (signed as is)",
                sign_text(j, line=json.dumps(j, sort_keys=True, separators=(",", ": ")).encode()),
                fmt, ("NonCanonical",)),
        _vector("non_canonical_key_order", "keys not sorted (signed as is)",
                sign_text(j, line=json.dumps(dict(reversed(list(j.items()))),
                                             separators=(",", ":")).encode()),
                fmt, ("NonCanonical",)),
        _vector("non_canonical_duplicate_key", "the key job twice (signed as is)",
                sign_text(j, line=body_line.replace(b'"job":', b'"job":"x","job":', 1)), fmt,
                ("NonCanonical",)),
        _vector("non_canonical_unescaped_utf8", "a non-ASCII character not escaped as \\u",
                sign_text(j, line=body_line.replace(b'"created":', '"a":"\u00e9","created":'
                                                    .encode(), 1)), fmt, ("NonCanonical",)),
        _vector("float_number", "totals.objects written 3.0 (signed as is)",
                sign_text(j, line=body_line.replace(b'"objects":3,', b'"objects":3.0,')), fmt,
                ("NonCanonical",)),
        _vector("nan_number", "totals.objects written NaN, which Python's json accepts "
                "(signed as is)", sign_text(j, line=body_line.replace(b'"objects":3,',
                b'"objects":NaN,')), fmt, ("NonCanonical",)),
        _malformed("missing_field", "no totals", {k: v for k, v in j.items() if k != "totals"}),
        _malformed("extra_field", "a field beyond the twelve", j | {"comment": "x"}),
        _malformed("sequence_zero", "sequence 0", j | {"sequence": 0}, ("Bounds",)),
        _malformed("previous_null_at_sequence_2", "sequence 2 with previous null",
                   j | {"sequence": 2}),
        _malformed("previous_set_at_sequence_1", "sequence 1 with a previous hash",
                   j | {"previous": "00" * 32}),
        _malformed("created_with_offset", "created with +01:00 instead of Z",
                   j | {"created": "2026-11-22T22:00:00+01:00"}, ("NonCanonical",)),
        _malformed("created_with_fraction", "created with fractional seconds",
                   j | {"created": "2026-11-22T21:00:00.5Z"}, ("NonCanonical",)),
        _malformed("job_name_upper_case", "job name with an upper-case letter",
                   j | {"job": "SNDS"}),
        _malformed("job_name_slash", "job name with a slash", j | {"job": "a/b"},
                   ("PathTraversal",)),
        _malformed("job_id_short", "job_id of 30 hex digits", j | {"job_id": "ab" * 15},
                   ("Bounds",)),
        _malformed("sender_is_recipient_key", "the sender field holds a recipient key",
                   j | {"sender": IDENTITY_A.public().to_text()}),
        _malformed("no_recipients", "an empty recipients list", j | {"recipients": []}),
        _malformed("recipient_twice", "two stanzas for recipient A (each wraps K_job with its "
                   "own ephemeral key)", j | {"recipients": [*j["recipients"],
                   wrap(JOB_KEY, IDENTITY_A.public(), det("manifest ephemeral A again"))
                   .to_json()]}),
        _malformed("no_catalog_segment", "an empty catalog list: every version has a catalog, "
                   "at least its source and totals", j | {"catalog": []}, ("Bounds",)),
        _malformed("key_check_15_bytes", "key_check of 15 bytes",
                   j | {"key_check": base64.b64encode(JOB_KEY.key_check[:15]).decode()},
                   ("Bounds",)),
        _malformed("object_list_digest_upper_case", "an object-list SHA-256 in upper case",
                   j | {"object_lists": [{"sha256": "AB" * 32, "size": 129}]},
                   ("NonCanonical",)),
        _malformed("totals_negative", "totals.objects -1",
                   j | {"totals": {"objects": -1, "stored_bytes": 0}}, ("Bounds",)),
        _vector("integer_above_int64", "totals.stored_bytes 2^63 (signed as is): canonical JSON "
                "integers are within int64", sign_text(j, line=body_line.replace(
                b'"stored_bytes":33558658', b'"stored_bytes":9223372036854775808')), fmt,
                ("Bounds",)),
        _vector("integer_below_int64", "totals.stored_bytes -2^63 - 1 (signed as is): refused "
                "as beyond int64 before its sign is looked at", sign_text(j, line=body_line.replace(
                b'"stored_bytes":33558658', b'"stored_bytes":-9223372036854775809')), fmt,
                ("Bounds",)),
        _malformed("catalog_size_negative", "a catalog segment of size -1",
                   j | {"catalog": [{"sha256": catalog_hex, "size": -1}]}, ("Bounds",)),
        # --- rollback ---
        # --- where it is stored (SPEC 13.1 step 7), what it totals (SPEC 14 step 5) ---
        _vector("stored_under_another_job", "a valid manifest of job snds-dcir-2026 found at "
                "jobs/snds-other/manifests/00000000000000000001", first, "integrity failure",
                ("NameMismatch",), stored_as={"job": "snds-other", "sequence": 1}),
        _vector("stored_under_another_sequence", "a valid manifest 1 found at "
                "manifests/00000000000000000002", first, "integrity failure", ("NameMismatch",),
                stored_as={"job": JOB, "sequence": 2}),
        *_totals_vectors(),
        _oversize(),
        _vector("rollback_below_newest_seen", "manifest 2 offered to a reader that has seen 3",
                second, "rollback", ("Rollback",), newest_seen=3),
        _vector("chain_previous_hash_wrong", "manifest 2 names another hash than manifest 1's",
                sign(replace(second_body, previous="00" * 32), SENDER).decode(), "rollback",
                ("Rollback",), history=[first]),
        _vector("chain_sequence_gap", "manifest 3 follows manifest 1 directly",
                sign(body(3, digest(first)), SENDER).decode(), "rollback", ("Rollback",),
                history=[first]),
        _vector("chain_other_job_id", "manifest 2 of another job id, linked to manifest 1",
                sign(body(2, digest(first), job_id="ff" * 16), SENDER).decode(), "rollback",
                ("Rollback",), history=[first]),
        _vector("chain_other_key_check", "manifest 2, linked to manifest 1, with the key_check "
                "of another job key: K_job never changes within a job",
                sign(body(2, digest(first), key_check=OTHER_JOB_KEY.key_check), SENDER).decode(),
                "rollback", ("Rollback",), history=[first]),
        _vector("chain_first_not_sequence_1", "manifest 2 offered with no history",
                second, "rollback", ("Rollback",), history=[]),
    ]  # fmt: skip
    return vector_file(
        "manifest",
        "manifest = 'transferd-manifest v1\\n' || canonical JSON body || '\\n' || 'sig ' || "
        "sender || ' ' || base64(Ed25519 signature of the first two lines) || '\\n'. Apply: "
        "parse, check the signature by the sender the body names, check that sender is "
        "expected_sender, refuse a sequence below newest_seen, and when history is given check "
        "the chain from sequence 1 through history to this manifest. With stored_as, the job "
        "and sequence of its store path must be the body's; with object_list_segments (the "
        "segments object_lists names), their packs must number totals.objects and sum to "
        "totals.stored_bytes. manifest is text, or a data description for the one vector too "
        "large to write out. Sign (Deterministic vectors): sign(body, sender_secret) = manifest.",
        vectors,
    )
