"""The storage host: an aiohttp application that puts a Store behind the API of protocol/HTTP.md.

``make_app`` is the app factory: tests build the same application the command runs. State lives
under typed ``web.AppKey``s (context.py); the store is closed, and the housekeeping task
(housekeeping.py: sweeping partial uploads, forgetting expired nonces) runs, by cleanup contexts,
so they are torn down only if the application started. The routes are in jobroutes.py and
copyroutes.py. Five middlewares wrap every handler, outermost first:

1. ``_log_requests`` writes one line per request (method, path, status, bytes in and out,
   milliseconds, the signing key's short form) and never a body or a header value; refusals
   that a flood repeats are logged once per interval and code instead (admission.RefusalLog);
2. ``_track`` counts requests in flight, and once the server is stopping answers new ones 503
   and closes each connection after its answer; it tells the connection guard
   (connections.py) that a request runs, which stops its header and idle timers;
3. ``_deadline`` gives the request ``request_timeout`` seconds, its answer's sending included;
4. ``_errors`` turns every refusal into ``{"error": …, "code": …}`` with its status (and
   ``Retry-After`` when the client should wait), including aiohttp's own (unknown route, wrong
   method), so a client always reads one shape;
5. ``_authenticate`` checks, before a byte of the body is read, that the key holds a grant at
   all (before any signature check, and before anything is remembered), the clock and the
   signature, the key's request rate, its nonce, then whether it may read or write that job.

The acknowledgement rule: ``PUT …/objects/{sha256}`` answers 201 only after the store's
``put_object`` returned, which for a local store means after fsync of the file and its directory.
A body that ends early, stalls, exceeds its cap or does not hash to its signed digest never
reaches the store, so nothing partial is ever stored under a name.

How it is run (host/build.py's ``serve``): until asked to stop (SIGTERM or SIGINT for ``transferd
serve``); it then stops listening and waits (up to ``shutdown_timeout``) until no request is in
flight, *before* handing over to aiohttp's own shutdown (close connections, cancel what is left,
run the cleanup contexts). The extra step is needed because aiohttp, once shutting down, drops
bytes arriving on open connections (aio-libs/aiohttp#2298): an upload whose body was still
arriving would stall and be cancelled, whereas a storage host should finish the 64 MiB pack it
was receiving rather than make the sender send it again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from transferd.core.request_signing import CONTENT_SHA256
from transferd.errors import (
    ApiError,
    FormatError,
    IntegrityError,
    ManifestExistsError,
    ObjectNotFoundError,
    PermanentStoreError,
    StoreFullError,
    TransferdError,
    TransientStoreError,
)
from transferd.host.admission import REFUSAL_LOG_INTERVAL, KeyRates, RefusalLog, UploadSlots
from transferd.host.auth import (
    Authorizer,
    Credentials,
    NonceCache,
    check_content_sha256,
    parse_authorization,
    unauthorized,
    verify,
)
from transferd.host.connections import ConnectionGuard
from transferd.host.context import (
    AUTHORIZER,
    CLOCK,
    CONNECTIONS,
    COUNTERS,
    HOUSEKEEPING,
    IN_FLIGHT,
    LIMITS,
    NONCES,
    RATES,
    REFUSALS,
    STORE,
    UPLOADS,
    InFlight,
    RequestInfo,
    read_body,
    request_info,
)
from transferd.host.copyroutes import COPY_PATH, add_copy_routes, authorized_name
from transferd.host.housekeeping import HostCounters, Housekeeping, housekeeping_context
from transferd.host.jobroutes import add_job_routes
from transferd.host.limits import HostLimits
from transferd.stores.base import Store

__all__ = [
    "AUTHORIZER",
    "CLOCK",
    "CONNECTIONS",
    "COUNTERS",
    "IN_FLIGHT",
    "NONCES",
    "STORE",
    "make_app",
]

log = logging.getLogger("transferd.serve")

_WRITE_METHODS = frozenset({"PUT", "DELETE"})
_FLOOD_STATUSES = frozenset({401, 403, 408, 429, 503})
"""Refusals a stranger or a runaway client can repeat at will: logged once per interval."""
_CLOSING_CODES = frozenset({"body_timeout", "request_timeout"})
"""Refusals after which the rest of the request cannot be trusted to arrive: close."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    store: Store,
    authorizer: Authorizer,
    *,
    limits: HostLimits | None = None,
    clock: Callable[[], float] = time.time,
    nonces: NonceCache | None = None,
) -> web.Application:
    """The storage host's application, serving ``store`` to the keys ``authorizer`` allows,
    within ``limits`` (host/limits.py's defaults when None)."""
    limits = limits or HostLimits()
    app = web.Application(middlewares=[_log_requests, _track, _deadline, _errors, _authenticate])
    app[STORE] = store
    app[IN_FLIGHT] = InFlight()
    app[AUTHORIZER] = authorizer
    app[LIMITS] = limits
    app[NONCES] = nonces if nonces is not None else NonceCache(capacity=limits.nonces_per_key)
    app[CLOCK] = clock
    app[RATES] = KeyRates(limits.key_rate, limits.key_burst)
    app[UPLOADS] = UploadSlots(limits.max_uploads, limits.upload_wait)
    app[REFUSALS] = RefusalLog()
    app[CONNECTIONS] = ConnectionGuard(limits)
    app[COUNTERS] = HostCounters()
    app[HOUSEKEEPING] = Housekeeping(
        store=store,
        partial_max_age=limits.partial_max_age,
        sweep_interval=limits.sweep_interval,
        counters=app[COUNTERS],
        chores=[
            app[REFUSALS].flush,
            lambda: app[NONCES].expire(clock()),
            app[RATES].forget_idle,
        ],
        closing=[lambda: app[REFUSALS].flush(final=True)],
        tick=min(REFUSAL_LOG_INTERVAL, limits.sweep_interval),
    )
    app.cleanup_ctx.append(_close_store)
    app.cleanup_ctx.append(housekeeping_context(HOUSEKEEPING))
    app.router.add_get("/v1/health", _health)
    add_job_routes(app)
    add_copy_routes(app, STORE, read_body)
    return app


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _close_store(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[STORE].close()


# --- middlewares ------------------------------------------------------------------------------


@web.middleware
async def _log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    info = RequestInfo()
    request_info.set(info)
    started = time.monotonic()
    status, sent = 500, 0
    try:
        response = await handler(request)
        status = response.status
        sent = _body_size(response)
        return response
    finally:
        line = (
            f"{request.method} {request.raw_path} {status} in={info.received} out={sent} "
            f"{round((time.monotonic() - started) * 1000)}ms key={info.key}"
        )
        if not info.refusal or request.app[REFUSALS].note(info.refusal, line):
            log.info("%s", line)


def _body_size(response: web.StreamResponse) -> int:
    """Bytes of the answer's body (``body_length`` of a sent answer counts its headers too)."""
    body = response.body if isinstance(response, web.Response) else None
    if isinstance(body, bytes | bytearray):
        return len(body)
    return response.body_length if response.prepared else 0


@web.middleware
async def _track(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    in_flight, guard = app[IN_FLIGHT], app[CONNECTIONS]
    if in_flight.stopping:
        response: web.StreamResponse = _error_response(
            503, "stopping", "the server is stopping; retry shortly", retry_after=1
        )
    else:
        in_flight.enter()
        guard.request_started(request.transport)
        try:
            response = await handler(request)
        finally:
            in_flight.leave()
            guard.request_finished(request.transport)
    if in_flight.stopping:  # no further request on this connection
        response.force_close()
    return response


@web.middleware
async def _deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The whole request within ``request_timeout``: the handler, then sending its answer
    (prepared and finished here rather than by aiohttp, so that a client that does not read its
    answer is cut off too)."""
    limit = request.app[LIMITS].request_timeout
    response: web.StreamResponse | None = None
    try:
        async with asyncio.timeout(limit):
            response = await handler(request)
            if not response.prepared:
                try:
                    await response.prepare(request)
                    await response.write_eof()
                except ConnectionError:  # the client is gone: nobody to answer
                    pass
    except TimeoutError:
        info = request_info.get()
        info.refusal = "request_timeout"
        if response is not None and response.prepared:  # half sent: only closing is left
            if request.transport is not None:
                request.transport.close()
            return response
        late = _error_response(
            408, "request_timeout", f"the request took over {limit:g} s, its answer included"
        )
        late.force_close()
        return late
    return response


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.status in _FLOOD_STATUSES:
            request_info.get().refusal = exc.code
        response = _error_response(
            exc.status, exc.code, exc.message, exc.fields, retry_after=exc.retry_after
        )
        if exc.code in _CLOSING_CODES:
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 413: "too_large"}.get(exc.status, "bad_request")
        return _error_response(exc.status, code, exc.reason.lower())
    except StoreFullError as exc:
        return _error_response(507, "out_of_space", exc.message)
    except ManifestExistsError as exc:
        return _error_response(409, "manifest_exists", exc.message)
    except ObjectNotFoundError as exc:
        return _error_response(404, "not_found", exc.message)
    except IntegrityError as exc:
        return _error_response(400, "corrupt_body", exc.message)
    except FormatError as exc:
        return _error_response(400, "bad_request", exc.message)
    except TransientStoreError as exc:
        log.warning("store unavailable: %s", exc.message)
        return _error_response(503, "store_unavailable", exc.message, retry_after=1)
    except (PermanentStoreError, TransferdError) as exc:
        log.error("store failure: %s", exc.message)
        return _error_response(500, "store_error", exc.message)
    except Exception:
        log.exception("internal error handling %s %s", request.method, request.raw_path)
        return _error_response(500, "internal", "internal error; see the server's log")


def _error_response(
    status: int,
    code: str,
    message: str,
    fields: dict[str, int | str] | None = None,
    *,
    retry_after: float | None = None,
) -> web.Response:
    """The JSON error answer of protocol/HTTP.md §9; ``fields`` go beside error and code, and
    ``retry_after`` seconds (rounded up, at least 1) into a Retry-After header."""
    headers = {"WWW-Authenticate": "TD1"} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    body = {**(fields or {}), "error": message, "code": code}
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(("/v1/jobs", COPY_PATH)):  # /v1/health, an unknown path
        return await handler(request)
    app = request.app
    creds = parse_authorization(request.headers.get("Authorization"))
    digest = check_content_sha256(request.headers.get(CONTENT_SHA256))
    host = request.headers.get("Host", "")
    authorizer = app[AUTHORIZER]
    if not authorizer.accepts_host(host):
        raise unauthorized(f"this server does not answer for host {host[:64]!r}")
    if not authorizer.has_grant(creds.key):  # before any work or memory is spent on the key
        raise ApiError(403, "forbidden", f"key {creds.key_text} has no grant on this host")
    now = app[CLOCK]()
    verify(
        creds,
        method=request.method,
        target=request.raw_path,
        content_sha256=digest,
        host=host,
        now=now,
    )
    info = request_info.get()
    info.key, info.creds, info.digest = creds.key_text[:16] + "…", creds, digest
    app[RATES].take(creds.key.key, creds.key_text)
    app[NONCES].remember(creds.key, creds.nonce, creds.ts, now)
    job = authorized_name(request)  # a job, or for copy records the job or copy named
    if job is not None:  # GET /v1/jobs filters by key instead
        _authorize(authorizer, creds, job, write=request.method in _WRITE_METHODS)
    return await handler(request)


def _authorize(authorizer: Authorizer, creds: Credentials, job: str, *, write: bool) -> None:
    allowed = authorizer.may_write if write else authorizer.may_read
    if not allowed(creds.key, job):
        raise ApiError(
            403,
            "forbidden",
            f"key {creds.key_text} may not {'write' if write else 'read'} job {job}",
        )
