"""The signed text both kinds of manifest are: a first line, a canonical JSON body, a signature.

    <first line, e.g. "transferd-manifest v1">\\n
    <canonical JSON body>\\n
    sig <tds1… sender key> <base64 Ed25519 signature of the two lines above>\\n

A job's manifest (core/manifest.py) and a copy's manifest (core/copy.py) are this envelope around
bodies of their own. One reader checks it, in the order of SPEC 13.1, so that the same fault gives
the same error in both: a parse failure is a ``FormatError``, a key that is not the body's or a
signature that does not verify is a ``SignatureError``, an unknown version is an
``UnsupportedVersionError``. The body is parsed before the signature is checked because the key
that must have signed it is named in the body; nothing in it is trusted until the check passes.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, TypeVar

from transferd.core import canonical
from transferd.core.constants import MANIFEST_MAX_SIZE
from transferd.core.jobkey import b64decode_strict
from transferd.core.keys import SenderPublicKey, SenderSecretKey, parse_key_text
from transferd.errors import FormatError, SignatureError, UnsupportedVersionError

B = TypeVar("B")


def sign_text(first_line: bytes, body: dict[str, Any], sender: SenderSecretKey) -> bytes:
    """The stored bytes: ``first_line`` (ending in a newline), the body, the signature line."""
    signed = first_line + canonical.dumps(body) + b"\n"
    signature = base64.b64encode(sender.sign(signed)).decode()
    return signed + f"sig {sender.public().to_text()} {signature}\n".encode()


def open_text(
    data: bytes,
    *,
    first_line: bytes,
    what: str,
    parse_body: Callable[[Any], B],
    sender_of: Callable[[B], str],
) -> B:
    """The body of ``data``, once its signature verified by the key the body names.

    Whether that key is the one the reader trusts is the caller's next question
    (``check_signer``). ``what`` names the object in messages ("manifest", "copy manifest").
    """
    if len(data) > MANIFEST_MAX_SIZE:
        raise FormatError(f"{what} of {len(data)} bytes exceeds the limit")
    magic = first_line.rpartition(b" ")[0] + b" "
    first, sep, rest = data.partition(b"\n")
    if not sep or not first.startswith(magic):
        raise FormatError(f"not a transferd {what} (bad first line)")
    if first + b"\n" != first_line:
        raise UnsupportedVersionError(first[len(magic) :].decode("ascii", "replace"), what)
    lines = rest.split(b"\n")
    if len(lines) != 3 or lines[2] != b"":
        raise FormatError(f"{what} must be exactly three lines")
    body_line, sig_line = lines[0], lines[1]
    body = parse_body(canonical.loads(body_line, f"{what} body"))
    sender = sender_of(body)
    parts = sig_line.split(b" ")
    if len(parts) != 3 or parts[0] != b"sig":
        raise FormatError(f"{what} signature line must be: sig <key> <signature>")
    if parts[1].decode("ascii", "replace") != sender:
        raise SignatureError(f"{what} signature line names another key than its body")
    signature = b64decode_strict(parts[2].decode("ascii", "replace"), f"{what} signature")
    if len(signature) != 64:
        raise FormatError(f"{what} signature must be 64 bytes")
    key = parse_key_text(sender)
    if not isinstance(key, SenderPublicKey):  # pragma: no cover - the body's parser checked it
        raise FormatError(f"{what} sender must be a sender public key (tds1…)")
    if not key.verify(first_line + body_line + b"\n", signature):
        raise SignatureError(f"{what} signature by {sender} is invalid: the {what} was altered")
    return body


def check_signer(sender: str, expected: SenderPublicKey, what: str) -> None:
    """The key that signed is the one the reader trusts (SPEC 13.1 step 6): the key a manifest
    names is never trusted because it is named there."""
    if sender != expected.to_text():
        raise SignatureError(f"{what} signed by {sender}, expected {expected.to_text()}")
