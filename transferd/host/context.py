"""What the storage host's middlewares and routes share: typed app state and the request at hand.

The application's state lives under typed ``web.AppKey``s. What one request has proven about
itself (its signing key, its signed body digest, the bytes received so far) is kept in a context
variable that the logging middleware sets for each request: aiohttp runs a request's middlewares
and handler in one task, so every layer sees the same ``RequestInfo`` without string keys on the
request.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from transferd.core.request_signing import CONTENT_SHA256
from transferd.errors import ApiError
from transferd.host.admission import KeyRates, RefusalLog, UploadSlots
from transferd.host.auth import (
    Authorizer,
    Credentials,
    NonceCache,
    digests_equal,
)
from transferd.host.connections import ConnectionGuard
from transferd.host.housekeeping import HostCounters, Housekeeping
from transferd.host.limits import HostLimits
from transferd.stores.base import Store

STORE: web.AppKey[Store] = web.AppKey("store")
AUTHORIZER: web.AppKey[Authorizer] = web.AppKey("authorizer", Authorizer)
NONCES: web.AppKey[NonceCache] = web.AppKey("nonces", NonceCache)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")
LIMITS: web.AppKey[HostLimits] = web.AppKey("limits", HostLimits)
RATES: web.AppKey[KeyRates] = web.AppKey("rates", KeyRates)
UPLOADS: web.AppKey[UploadSlots] = web.AppKey("uploads", UploadSlots)
REFUSALS: web.AppKey[RefusalLog] = web.AppKey("refusals", RefusalLog)
CONNECTIONS: web.AppKey[ConnectionGuard] = web.AppKey("connections", ConnectionGuard)
COUNTERS: web.AppKey[HostCounters] = web.AppKey("counters", HostCounters)
HOUSEKEEPING: web.AppKey[Housekeeping] = web.AppKey("housekeeping", Housekeeping)


class InFlight:
    """Requests being handled, and whether the server is stopping."""

    def __init__(self) -> None:
        self.count = 0
        self.stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


IN_FLIGHT: web.AppKey[InFlight] = web.AppKey("in_flight", InFlight)


@dataclass
class RequestInfo:
    """What the log line needs to know about a request, filled in as it is handled."""

    key: str = "-"
    creds: Credentials | None = None
    digest: str = ""
    received: int = 0
    refusal: str = ""
    """The code of a refusal that a flood repeats (401, 403, 408, 429, 503 busy): logged once
    per interval and code rather than once per request (admission.RefusalLog)."""


request_info: contextvars.ContextVar[RequestInfo] = contextvars.ContextVar("request_info")


def check_length(request: web.Request, cap: int) -> None:
    """Refuse a body whose declared length exceeds ``cap``, before reading any of it."""
    declared = request.content_length
    if declared is not None and declared > cap:
        raise ApiError(413, "too_large", f"body of {declared} bytes exceeds the {cap}-byte limit")


async def _parts(request: web.Request) -> AsyncGenerator[bytes, None]:
    """The body's parts as they arrive, each awaited at most ``body_timeout`` seconds."""
    idle = request.app[LIMITS].body_timeout
    parts = request.content.iter_any().__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle):
                part = await anext(parts)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ApiError(
                408, "body_timeout", f"no byte of the body arrived for {idle:g} s"
            ) from None
        yield part


async def body_parts(request: web.Request, cap: int) -> AsyncGenerator[bytes, None]:
    """The body in the parts it arrives in, at most ``cap`` bytes, for a store that writes as
    it goes (``LocalStore.put_object_stream``, which checks the hash); refused as by
    ``read_body`` when too large, cut short or stalled."""
    info = request_info.get()
    check_length(request, cap)
    try:
        async for part in _parts(request):
            info.received += len(part)
            if info.received > cap:
                raise ApiError(413, "too_large", f"body exceeds the {cap}-byte limit")
            yield part
    except (ConnectionError, HttpProcessingError) as exc:
        raise ApiError(400, "corrupt_body", f"the body ended early: {exc}") from None


async def read_body(request: web.Request, cap: int, *, check_digest: bool = True) -> bytes:
    """The whole body, at most ``cap`` bytes, checked against the signed digest unless the
    caller has that checked elsewhere (``check_digest=False``)."""
    info = request_info.get()
    check_length(request, cap)
    hasher, parts = hashlib.sha256(), []
    try:
        async for part in _parts(request):
            info.received += len(part)
            if info.received > cap:
                raise ApiError(413, "too_large", f"body exceeds the {cap}-byte limit")
            if check_digest:
                hasher.update(part)
            parts.append(part)
    except (ConnectionError, HttpProcessingError) as exc:
        # The client went away or the framing broke mid-body: nothing is stored.
        raise ApiError(400, "corrupt_body", f"the body ended early: {exc}") from None
    if check_digest and not digests_equal(hasher.hexdigest(), info.digest):
        raise ApiError(
            400,
            "corrupt_body",
            f"the body does not match its {CONTENT_SHA256}: it was altered or cut short",
        )
    return b"".join(parts)
