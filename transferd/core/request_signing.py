"""Signing a request to the storage host's HTTP API (protocol/HTTP.md, "Authentication").

Every request to ``/v1/jobs/…`` is signed with the sender's Ed25519 key: the same key whose
public half a manifest names, so a storage host needs no other secret and holds none. The signed
string binds the method, the path and query, the SHA-256 of the body, a timestamp, a random nonce
and the Host the client addressed::

    transferd-request v1\\n METHOD\\n target\\n content-sha256\\n ts\\n nonce\\n host

This is the part of the scheme both sides share: the client (stores/http.py) signs with it, the
host (host/auth.py) parses, checks the clock and the nonce, and verifies. Pure: the clock reading
and the nonce are passed in.
"""

from __future__ import annotations

import base64
import hashlib

from transferd.core.keys import SenderSecretKey

SCHEME = "TD1"
SIGNING_PREFIX = b"transferd-request v1\n"
CONTENT_SHA256 = "TD-Content-SHA256"
"""The request header carrying the lowercase hex SHA-256 of the body (of b"" when none)."""


def content_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def signing_string(
    *, method: str, target: str, content_sha256: str, ts: int, nonce: str, host: str
) -> bytes:
    """The exact bytes signed for one request (protocol/HTTP.md, "The signed string")."""
    lines = (method, target, content_sha256, str(ts), nonce, host)
    return SIGNING_PREFIX + "\n".join(lines).encode("ascii")


def authorization(
    key: SenderSecretKey,
    *,
    method: str,
    target: str,
    content_sha256: str,
    host: str,
    ts: int,
    nonce: str,
) -> str:
    """The ``Authorization`` header value for one request, signed with ``key``."""
    message = signing_string(
        method=method, target=target, content_sha256=content_sha256, ts=ts, nonce=nonce, host=host
    )
    sig = base64.b64encode(key.sign(message)).decode("ascii")
    return f"{SCHEME} key={key.public().to_text()}, ts={ts}, nonce={nonce}, sig={sig}"
