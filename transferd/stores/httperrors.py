"""What a failed exchange with the storage host means: the store error, its message and hint.

The server's JSON errors become the store errors of the contract (stores/base.py), carrying the
server's own message; a failure to get an answer at all is classified by its cause:

=====================  ==============================  =========================================
status, code           error                           why
=====================  ==============================  =========================================
507 out_of_space       StoreFullError                  the operator must act; retrying won't help
409 manifest_exists    ManifestExistsError             manifests are never replaced
404 not_found          ObjectNotFoundError             (reads of an unknown job return empty)
400 corrupt_body       TransientStoreError             the body hashes to its name here, so it
                                                       was altered on the way: send it again
                       IntegrityError                  it does not: the caller's bytes are wrong
401 replayed           TransientStoreError             something on the way repeated our request;
                                                       a retry is signed afresh and is safe
401 clock_skew         ClockSkewError (permanent)      fix the clock, then resume; skew_seconds
                                                       says by how much, when the host says it
401 other              PermanentStoreError             fix the key, then resume
  401/403/400/413
429, 503 + Retry-After ThrottledError                  retried after at least that many seconds
5xx, 408, 429          TransientStoreError
timeouts, resets       TransientStoreError
refused connection     PermanentStoreError             "nothing listens on HOST:PORT": until the
                                                       host answered once; then a restart,
                                                       TransientStoreError
TLS verification,      PermanentStoreError             a wrong certificate stays wrong; TLS to a
  TLS to a plain port,                                 plain port (or plain HTTP to TLS, seen as
  http:// to TLS                                       a silent close before any answer) too
an answer not JSON,    RemoteProtocolError             what answers is not a transferd host (a
  or of another shape                                  proxy's login page, another service), or
                                                       not one of this version: asking again
                                                       gets the same answer, so never retried
=====================  ==============================  =========================================

Messages are built from an error's parts (host, port, the OS's reason), never its text, which
holds Python reprs; hints name only options that exist (``--ca-file``, ``https://``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import ssl

import aiohttp

from transferd.errors import (
    ClockSkewError,
    ManifestExistsError,
    ObjectNotFoundError,
    PermanentStoreError,
    StoreFullError,
    ThrottledError,
    TransferdError,
    TransientStoreError,
)
from transferd.stores.retry import MAX_RETRY_AFTER


def connection_failure(
    exc: Exception, what: str, *, where: str, description: str, timeout: float, answered: bool
) -> TransferdError | None:
    """The store error a failure to get an answer stands for, or None for a bug.

    Messages are built from the parts of the exception (host, port, the OS's reason), never
    from its text, which holds Python reprs (``ssl:<ssl.SSLContext object at 0x…>``). What
    cannot recover is permanent: a certificate not trusted, TLS spoken to a plain port, and a
    refused connection before this host ever answered (nothing listens there: a wrong port
    or a host not started). A refusal after it answered is a host restarting, and is
    retried like a timeout or a reset. Plain HTTP to a TLS port looks like an answer lost on
    the way (the host closes without a word), so the store asks the port (``speaks_tls``) whether it
    speaks TLS before calling that permanent.
    """
    if isinstance(exc, aiohttp.ServerFingerprintMismatch):
        return PermanentStoreError(
            f"{what}: the TLS certificate of {where} is not trusted: its SHA-256 is not the "
            "pinned one"
        )
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return PermanentStoreError(
            f"{what}: the TLS certificate of {where} is not trusted: "
            f"{_ssl_reason(exc.certificate_error)}",
            hint="trust the host's certificate, or the CA that signed it, with --ca-file "
            "FILE (ca_file in [send] of the daemon's configuration)",
        )
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        error = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
        return PermanentStoreError(
            f"{what}: no TLS session with {where}: {_ssl_reason(error)}",
            hint=f"if {where} serves plain HTTP, use http://{where}",
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if os_error.errno == errno.ECONNREFUSED:
            text = f"{what}: nothing listens on {where} (connection refused)"
            hint = "check the host and port of the URL, and that the storage host runs"
            if not answered:
                return PermanentStoreError(text, hint=hint)
            return TransientStoreError(text, hint=hint)
        return TransientStoreError(f"{what}: cannot connect to {where}: {_os_reason(os_error)}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):  # see _request: TLS is probed
        return TransientStoreError(f"{what}: {where} closed the connection without answering")
    if isinstance(exc, TimeoutError):
        return TransientStoreError(f"{what}: {description} did not answer within {timeout:g} s")
    if isinstance(exc, aiohttp.ClientError | ConnectionError):
        reason = _os_reason(exc) if isinstance(exc, OSError) else type(exc).__name__
        return TransientStoreError(f"{what}: {description} did not answer: {reason}")
    return None


def answer_error(
    status: int, data: bytes, what: str, description: str, retry_after: str | None = None
) -> TransferdError:
    """The store error an answer of an unexpected ``status`` stands for (the table above)."""
    try:
        answer = json.loads(data)
        code, message = str(answer["code"]), str(answer["error"])
    except (ValueError, KeyError, TypeError):
        # A refusal without the JSON body (a proxy's own 502 page): the status decides.
        answer, code, message = {}, "", f"HTTP {status}"
    text = f"{what}: {description} answered {status} {code or 'error'}: {message}"
    if status == 507 or code == "out_of_space":
        return StoreFullError(text, hint="the storage host must free space; then resume")
    if code == "manifest_exists":
        return ManifestExistsError(text)
    if status == 404 and code in ("not_found", "unknown_job"):
        return ObjectNotFoundError(text)
    wait = _retry_after(retry_after)
    if wait is not None and status in (429, 503):  # the host says when to come back
        return ThrottledError(text, retry_after=wait)
    if code in ("corrupt_body", "replayed") or status >= 500 or status in (408, 429):
        return TransientStoreError(text)
    if code == "clock_skew":
        skew, limit = answer.get("skew_seconds"), answer.get("limit_seconds")
        limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else 300
        return ClockSkewError(
            text,
            skew_seconds=skew if isinstance(skew, int) and not isinstance(skew, bool) else None,
            limit_seconds=limit,
            hint=f"set this host's clock (NTP): requests are valid within {limit} s",
        )
    return PermanentStoreError(text)


async def speaks_tls(host: str, port: int) -> bool:
    """Whether ``host:port`` completes a TLS handshake: asked only after plain HTTP met a silent
    close before any answer, to tell a TLS port from an answer lost on the way. Nothing is sent
    over the session, so the certificate is deliberately not checked here: the answer is only
    "this port speaks TLS", and a real connection to it verifies as always."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(5):
            _, writer = await asyncio.open_connection(host, port, ssl=probe)
    except (OSError, TimeoutError, ssl.SSLError):
        return False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return True


def _retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` in delta-seconds form (the host sends no other)."""
    if value is None or not value.strip().isdigit():
        return None
    return float(min(int(value.strip()), MAX_RETRY_AFTER))


def _os_reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def _ssl_reason(exc: BaseException) -> str:
    """An SSL error's reason (``certificate verify failed: self-signed certificate``)."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    return type(exc).__name__
