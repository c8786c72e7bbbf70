"""Hypothesis strategies and fixed values shared by the core tests.

Example counts stay modest (the machine has two shared cores): every property runs in well under a
second. Keys are built from fixed bytes, never drawn, so a failure shrinks to a reproducible value.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from transferd.core.jobkey import JobKey, wrap
from transferd.core.keys import RecipientIdentity, SenderSecretKey
from transferd.core.manifest import ManifestBody, Totals
from transferd.core.objectlist import ObjectRef

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fixed(label: str, size: int = 32) -> bytes:
    return hashlib.shake_256(label.encode()).digest(size)


JOB_KEY = JobKey(fixed("core tests job key"))
IDENTITY = RecipientIdentity(fixed("core tests identity"))
OTHER_IDENTITY = RecipientIdentity(fixed("core tests other identity"))
SENDER = SenderSecretKey(fixed("core tests sender"))
OTHER_SENDER = SenderSecretKey(fixed("core tests other sender"))

keys32 = st.binary(min_size=32, max_size=32)
nonces = st.binary(min_size=24, max_size=24)
digests = st.binary(min_size=32, max_size=32)
sizes = st.integers(min_value=0, max_value=2**64 - 1)
"""A u64 of the binary format (object-list entries)."""
json_sizes = st.integers(min_value=0, max_value=2**63 - 1)
"""A size in canonical JSON (manifest, catalog), whose integers are within int64 (SPEC 1)."""

# A path component: any bytes but "/" and NUL, never "." or "..".
_component = st.binary(min_size=1, max_size=12).filter(
    lambda b: b"/" not in b and b"\x00" not in b and b not in (b".", b"..")
)
safe_paths = st.lists(_component, min_size=1, max_size=4).map(b"/".join)


def object_refs(max_size: int = 8) -> st.SearchStrategy[list[ObjectRef]]:
    """The packs of one object-list segment: at least one, each named once (SPEC 9)."""
    return st.lists(
        st.builds(ObjectRef, digests, sizes),
        min_size=1,
        max_size=max_size,
        unique_by=lambda r: r.sha256,
    )


def _public(secret: bytes) -> bytes:
    return RecipientIdentity(secret).public().key


@st.composite
def manifest_bodies(draw: st.DrawFn) -> ManifestBody:
    sequence = draw(st.integers(min_value=1, max_value=2**40))
    previous = None if sequence == 1 else draw(digests).hex()
    recipients = draw(  # one stanza per recipient (SPEC 5); clamping maps secrets together
        st.lists(keys32, min_size=1, max_size=3, unique_by=_public)
    )
    refs = st.builds(ObjectRef, digests, json_sizes)
    return ManifestBody(
        job=draw(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,63}", fullmatch=True)),
        job_id=draw(st.binary(min_size=16, max_size=16)).hex(),
        sequence=sequence,
        created=draw(st.datetimes(datetime(2000, 1, 1), datetime(2999, 12, 31))).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        ),
        previous=previous,
        sender=SENDER.public().to_text(),
        recipients=tuple(
            wrap(JOB_KEY, RecipientIdentity(r).public(), fixed(f"e{i}"))
            for i, r in enumerate(recipients)
        ),
        key_check=JOB_KEY.key_check,
        object_lists=tuple(draw(st.lists(refs, max_size=3))),
        catalog=tuple(draw(st.lists(refs, min_size=1, max_size=3))),
        totals=Totals(draw(json_sizes), draw(json_sizes)),
    )


def flip(data: bytes, bit: int) -> bytes:
    """``data`` with bit number ``bit`` (0 = lowest bit of the first byte) flipped."""
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def records() -> st.SearchStrategy[list[dict[str, Any]]]:
    """Catalog records of the kinds a directory source writes, with any safe path."""
    from transferd.core.catalog import name_fields

    times = st.integers(min_value=-(2**62), max_value=2**62)
    modes = st.integers(min_value=0, max_value=0o7777)
    entry = st.one_of(
        st.builds(lambda p, m, t: {"t": "dir", **name_fields("path", p), "mode": m, "mtime_ns": t},
                  safe_paths, modes, times),
        st.builds(lambda p, m, t: {"t": "file", **name_fields("path", p), "mode": m, "mtime_ns": t},
                  safe_paths, modes, times),
        st.builds(lambda p, g, t: {"t": "symlink", **name_fields("path", p),
                                   **name_fields("target", g), "mtime_ns": t},
                  safe_paths, st.binary(min_size=1, max_size=20).filter(lambda b: 0 not in b),
                  times),
        st.builds(lambda s, h: {"t": "end", "size": s, "blake3": h.hex()}, json_sizes, digests),
    )  # fmt: skip
    return st.lists(entry, max_size=20).map(
        lambda rs: [{"t": "source", "kind": "directory", "root": "/r"}, *rs]
    )
