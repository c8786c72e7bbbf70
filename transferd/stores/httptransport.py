"""The HTTP client's transport settings for the storage host: TLS, the Host header, bodies
sent without copies, and no silent resends of a signed request (stores/http.py uses them)."""

from __future__ import annotations

import os
import re
import ssl

import aiohttp
import aiohttp.abc
import aiohttp.payload
from yarl import URL

from transferd.errors import ConfigError

BODY_SLICE = 1 << 20
"""A body is handed to the transport in slices of this size: the event loop runs between two,
and no slice is copied (they are views of the caller's buffer)."""


def no_resend(session: aiohttp.ClientSession) -> None:
    """Stop aiohttp from sending a request a second time, unchanged, when its connection drops.

    aiohttp does that once for idempotent methods (RFC 9112 §9.3.1 allows it), but a signed
    request sent twice is a replay: if the first copy reached the host, the second is refused
    with ``replayed`` and the attempt is lost. Our retries go through RetryingStore, which signs
    each attempt afresh. aiohttp's own test client turns the resend off the same way.
    """
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False


class BufferPayload(aiohttp.payload.Payload):
    """A request body sent from memory as views of itself.

    aiohttp's own choices both cost a pass over the body: ``bytes`` above 1 MiB warns that it
    blocks the loop, and ``BytesIO`` copies the buffer (``getbuffer`` unshares it) and then each
    64 KiB piece it reads. Views of ``BODY_SLICE`` bytes copy nothing and let the loop run between
    slices (``writer.write`` drains the transport above 64 KiB).
    """

    _autoclose = True  # nothing to close: the buffer belongs to the caller

    def __init__(self, value: bytes | bytearray | memoryview, content_type: str) -> None:
        super().__init__(value, content_type=content_type)
        self._size = memoryview(value).nbytes

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self._value).decode(encoding, errors)

    async def write(self, writer: aiohttp.abc.AbstractStreamWriter) -> None:
        view = memoryview(self._value).cast("B")
        for start in range(0, len(view), BODY_SLICE):
            await writer.write(view[start : start + BODY_SLICE])


def host_header(url: URL) -> str:
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    return host if url.is_default_port() else f"{host}:{url.port}"


def ssl_option(
    context: ssl.SSLContext | None,
    ca_file: str | os.PathLike[str] | None,
    pin_sha256: str | None,
) -> ssl.SSLContext | aiohttp.Fingerprint | bool:
    if pin_sha256:
        digest = pin_sha256.lower().removeprefix("sha256:").replace(":", "")
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ConfigError(f"certificate pin {pin_sha256!r} is not a SHA-256 in hex")
        return aiohttp.Fingerprint(bytes.fromhex(digest))
    if context is not None:
        return context
    if ca_file:
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the CA file {ca_file}: {exc}") from None
    return True
