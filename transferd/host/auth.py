"""Request authentication at the storage host (protocol/HTTP.md, "Authentication").

Every request to ``/v1/jobs/…`` is signed with the sender's Ed25519 key: the same key whose
public half a manifest names, so a storage host needs no other secret and holds none. The signed
string binds the method, the path and query, the SHA-256 of the body, a timestamp, a random nonce
and the Host the client addressed::

    transferd-request v1\\n METHOD\\n target\\n content-sha256\\n ts\\n nonce\\n host

The timestamp bounds how long a captured request stays usable (``CLOCK_SKEW_LIMIT``) and the
nonce cache refuses a second use within that window, so an eavesdropper on a plain-HTTP link
cannot replay an upload or a delete. The body's digest travels in a header and is signed, so the
server authenticates a request before reading a byte of its body, then checks the body against
the signed digest while reading it.

There are no shared secrets: verification is an Ed25519 check with a public key, and the values
compared (digests of bodies the client sent) are public. Where a byte string from the request is
compared with one the server computed, ``hmac.compare_digest`` is used all the same, so that no
future secret-bearing field inherits a timing leak.

The signed string itself is core/request_signing.py's, shared with the client. Everything here is
pure: the clock reading and the nonce are passed in.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import heapq
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from transferd.core.keys import SenderPublicKey, describe, parse_key_text
from transferd.core.request_signing import CONTENT_SHA256, SCHEME, signing_string
from transferd.errors import ApiError, ConfigError, KeyFormatError

CLOCK_SKEW_LIMIT = 300
"""Seconds a request's timestamp may differ from the server's clock, either way: long enough for
hosts whose NTP drifted a little and for a 64 MiB upload on a slow link to start, short enough
that the nonces of the whole window fit in memory (see NONCES_PER_KEY)."""
NONCES_PER_KEY = 65_536
"""(key, nonce) pairs remembered per key at once (host/limits.py, ``nonces_per_key``)."""

_NONCE = re.compile(r"[A-Za-z0-9_-]{22,64}")
_TS = re.compile(r"[0-9]{1,12}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_PATTERN = re.compile(r"[a-z0-9._*?\[\]!-]{1,64}")
_FIELDS = ("key", "ts", "nonce", "sig")


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


@dataclass(frozen=True)
class Credentials:
    """What an ``Authorization`` header claims, parsed but not yet verified."""

    key: SenderPublicKey
    ts: int
    nonce: str
    signature: bytes = field(repr=False)

    @property
    def key_text(self) -> str:
        return self.key.to_text()


def parse_authorization(value: str | None) -> Credentials:
    """Parse ``TD1 key=…, ts=…, nonce=…, sig=…``; any deviation is a 401 naming it."""
    if not value:
        raise unauthorized(f"the request has no Authorization header; sign it with {SCHEME}")
    scheme, _, params = value.partition(" ")
    if scheme != SCHEME:
        raise unauthorized(f"authorization scheme {scheme[:16]!r} is not {SCHEME}")
    fields: dict[str, str] = {}
    for part in params.split(","):
        name, sep, item = part.strip().partition("=")
        if not sep or name not in _FIELDS or name in fields:
            raise unauthorized(f"authorization parameter {name[:16]!r} is unknown or repeated")
        fields[name] = item
    if len(fields) != len(_FIELDS):
        missing = [f for f in _FIELDS if f not in fields]
        raise unauthorized(f"authorization lacks {', '.join(missing)}")
    try:
        key = parse_key_text(fields["key"])
    except KeyFormatError as exc:
        raise unauthorized(f"authorization key: {exc.message}") from None
    if not isinstance(key, SenderPublicKey) or not fields["key"].startswith("tds1"):
        raise unauthorized(f"authorization key is {describe(key)}, not a sender key tds1…")
    if not _TS.fullmatch(fields["ts"]):
        raise unauthorized("authorization ts must be unix seconds, digits only")
    if not _NONCE.fullmatch(fields["nonce"]):
        raise unauthorized("authorization nonce must be 22 to 64 base64url characters")
    try:
        signature = base64.b64decode(fields["sig"], validate=True)
    except binascii.Error:
        signature = b""
    if len(signature) != 64 or base64.b64encode(signature).decode() != fields["sig"]:
        raise unauthorized("authorization sig must be a 64-byte signature in padded base64")
    return Credentials(key, int(fields["ts"]), fields["nonce"], signature)


def check_content_sha256(value: str | None) -> str:
    if value is None or not _HEX64.fullmatch(value):
        raise ApiError(
            400, "bad_request", f"the {CONTENT_SHA256} header must be 64 lowercase hex digits"
        )
    return value


def verify(
    creds: Credentials,
    *,
    method: str,
    target: str,
    content_sha256: str,
    host: str,
    now: float,
) -> None:
    """Check the timestamp against ``now``, then the signature. Raises ApiError (401)."""
    skew = now - creds.ts
    if abs(skew) > CLOCK_SKEW_LIMIT:
        raise ApiError(
            401,
            "clock_skew",
            f"clock skew of {int(abs(skew))} s exceeds the allowed {CLOCK_SKEW_LIMIT} s "
            f"(the request is {'behind' if skew > 0 else 'ahead of'} the server's clock)",
            skew_seconds=int(skew),
            limit_seconds=CLOCK_SKEW_LIMIT,
        )
    message = signing_string(
        method=method,
        target=target,
        content_sha256=content_sha256,
        ts=creds.ts,
        nonce=creds.nonce,
        host=host,
    )
    if not creds.key.verify(message, creds.signature):
        raise unauthorized(
            f"the signature by {creds.key_text} does not verify: wrong key, or the request "
            "was altered (method, path, body digest, time, nonce or host)"
        )


def digests_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii", "replace"), b.encode("ascii", "replace"))


class NonceCache:
    """The (key, nonce) pairs seen within the replay window, a bounded number per key.

    An entry lives until its request's timestamp leaves the window (``ts + window``, judged by
    the host's clock); after that a replay fails the clock check instead. Only a request whose
    signature verified, by a key holding a grant, is remembered (server.py), and each key has
    its own ``capacity``: a key that fills its memory is answered 503 ``busy`` until its oldest
    entries expire, and no other key notices. Forgetting a live pair instead would let a replay
    through. Expired entries are dropped on every insertion for that key and by ``expire``, which
    the host's housekeeping calls, so the memory of a key that went quiet is given back.
    """

    def __init__(self, window: int = CLOCK_SKEW_LIMIT, capacity: int = NONCES_PER_KEY) -> None:
        self.window = window
        self.capacity = capacity
        self._keys: dict[bytes, _KeyNonces] = {}

    def __len__(self) -> int:
        return sum(len(k.seen) for k in self._keys.values())

    @property
    def keys(self) -> int:
        """Keys with at least one live entry."""
        return len(self._keys)

    def remember(self, key: SenderPublicKey, nonce: str, ts: int, now: float) -> None:
        """Record a verified request's nonce; ApiError if it was seen, or if this key's memory is
        full."""
        memory = self._keys.get(key.key)
        if memory is None:
            memory = self._keys[key.key] = _KeyNonces()
        memory.expire(now)
        if nonce in memory.seen:
            raise ApiError(
                401, "replayed", f"replayed request: nonce {nonce} of {key.to_text()} was used"
            )
        if len(memory.seen) >= self.capacity:
            wait = max(1.0, memory.expiries[0][0] - now)
            raise ApiError(
                503,
                "busy",
                f"key {key.to_text()} made {self.capacity} requests within the replay window; "
                "retry later",
                retry_after=wait,
            )
        expiry = ts + self.window
        memory.seen[nonce] = expiry
        heapq.heappush(memory.expiries, (expiry, nonce))

    def expire(self, now: float) -> None:
        """Drop every expired entry, and the keys left with none."""
        for key, memory in list(self._keys.items()):
            memory.expire(now)
            if not memory.seen:
                del self._keys[key]


@dataclass
class _KeyNonces:
    seen: dict[str, float] = field(default_factory=dict)
    expiries: list[tuple[float, str]] = field(default_factory=list)

    def expire(self, now: float) -> None:
        while self.expiries and self.expiries[0][0] < now:
            _, nonce = heapq.heappop(self.expiries)
            del self.seen[nonce]


class Authorizer:
    """Which sender keys may write, and which may read, which jobs (fnmatch patterns).

    A key allowed to write a job may also read it: a sender resumes by asking what is stored.
    """

    def __init__(
        self,
        writers: Iterable[tuple[str, SenderPublicKey]] = (),
        readers: Iterable[tuple[str, SenderPublicKey]] = (),
        *,
        hosts: Iterable[str] = (),
    ) -> None:
        self.writers = tuple(writers)
        self.readers = tuple(readers)
        self.hosts = frozenset(h.lower() for h in hosts)
        """Host header values accepted; empty accepts any (see protocol/HTTP.md, "Host")."""
        self._granted = frozenset(k.key for _, k in (*self.writers, *self.readers))

    def __bool__(self) -> bool:
        return bool(self.writers or self.readers)

    def has_grant(self, key: SenderPublicKey) -> bool:
        """Whether ``key`` may use this host at all: a set lookup, made before any signature is
        checked or anything is remembered, so that a key nobody granted costs almost nothing."""
        return key.key in self._granted

    def may_write(self, key: SenderPublicKey, job: str) -> bool:
        return _granted(self.writers, key, job)

    def may_read(self, key: SenderPublicKey, job: str) -> bool:
        return _granted(self.readers, key, job) or _granted(self.writers, key, job)

    def accepts_host(self, host: str) -> bool:
        return not self.hosts or host.lower() in self.hosts


def _granted(grants: Iterable[tuple[str, SenderPublicKey]], key: SenderPublicKey, job: str) -> bool:
    return any(k.key == key.key and fnmatch.fnmatchcase(job, p) for p, k in grants)


def parse_grant(text: str) -> tuple[str, SenderPublicKey]:
    """``JOBPATTERN=tds1…`` as given to ``--allow``; ConfigError naming what is wrong."""
    pattern, sep, key_text = text.partition("=")
    pattern, key_text = pattern.strip(), key_text.strip()
    if not sep or not pattern or not key_text:
        raise ConfigError(f"grant {text!r} is not JOBPATTERN=tds1…", hint="e.g. 'snds-*=tds1…'")
    if not _PATTERN.fullmatch(pattern):
        raise ConfigError(
            f"job pattern {pattern!r} is not valid: job-name characters a-z 0-9 . _ - "
            "and the wildcards * ? [ ]"
        )
    key = parse_key_text(key_text)
    if not isinstance(key, SenderPublicKey):
        raise ConfigError(
            f"grant for {pattern!r} gives {describe(key)}; a sender public key tds1… was expected",
            hint="print a key file's public key with 'transferd keys show FILE'",
        )
    return pattern, key
