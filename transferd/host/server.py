"""The storage host: an aiohttp application that puts a Store behind the API of protocol/HTTP.md.

``make_app`` is the app factory: tests build the same application the command runs. State lives
under typed ``web.AppKey``s (context.py); the store is closed by a cleanup context, so it is torn
down only if the application started. The routes are in jobroutes.py and copyroutes.py. Four
middlewares wrap every handler, outermost first:

1. ``_log_requests`` writes one line per request (method, path, status, bytes in and out,
   milliseconds, the signing key's short form) and never a body or a header value;
2. ``_track`` counts requests in flight, and once the server is stopping answers new ones 503
   and closes each connection after its answer;
3. ``_errors`` turns every refusal into ``{"error": …, "code": …}`` with its status, including
   aiohttp's own (unknown route, wrong method), so a client always reads one shape;
4. ``_authenticate`` checks the signature, clock and nonce of every request under ``/v1/jobs/``
   before a byte of its body is read, then whether the key may read or write that job.

The acknowledgement rule: ``PUT …/objects/{sha256}`` answers 201 only after the store's
``put_object`` returned, which for a local store means after fsync of the file and its directory.
A body that ends early, exceeds its cap or does not hash to its signed digest never reaches the
store, so nothing partial is ever stored under a name.

How it is run (host/build.py's ``serve``): until asked to stop (SIGTERM or SIGINT for ``transferd
serve``); it then stops listening and waits (up to ``shutdown_timeout``) until no request is in
flight, *before* handing over to aiohttp's own shutdown (close connections, cancel what is left,
run the cleanup contexts). The extra step is needed because aiohttp, once shutting down, drops
bytes arriving on open connections (aio-libs/aiohttp#2298): an upload whose body was still
arriving would stall and be cancelled, whereas a storage host should finish the 64 MiB pack it
was receiving rather than make the sender send it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from transferd.core.request_signing import CONTENT_SHA256
from transferd.errors import (
    FormatError,
    IntegrityError,
    PermanentStoreError,
    StoreFullError,
    TransferdError,
    TransientStoreError,
)
from transferd.host.auth import (
    ApiError,
    Authorizer,
    Credentials,
    NonceCache,
    check_content_sha256,
    parse_authorization,
    unauthorized,
    verify,
)
from transferd.host.context import (
    AUTHORIZER,
    CLOCK,
    IN_FLIGHT,
    NONCES,
    STORE,
    InFlight,
    RequestInfo,
    read_body,
    request_info,
)
from transferd.host.copyroutes import COPY_PATH, add_copy_routes, authorized_name
from transferd.host.jobroutes import add_job_routes
from transferd.stores.base import ManifestExistsError, ObjectNotFoundError, Store

__all__ = [
    "AUTHORIZER",
    "CLOCK",
    "IN_FLIGHT",
    "NONCES",
    "STORE",
    "make_app",
]

log = logging.getLogger("transferd.serve")

_WRITE_METHODS = frozenset({"PUT", "DELETE"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    store: Store,
    authorizer: Authorizer,
    *,
    clock: Callable[[], float] = time.time,
    nonces: NonceCache | None = None,
) -> web.Application:
    """The storage host's application, serving ``store`` to the keys ``authorizer`` allows."""
    app = web.Application(middlewares=[_log_requests, _track, _errors, _authenticate])
    app[STORE] = store
    app[IN_FLIGHT] = InFlight()
    app[AUTHORIZER] = authorizer
    app[NONCES] = nonces if nonces is not None else NonceCache()
    app[CLOCK] = clock
    app.cleanup_ctx.append(_close_store)
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
        sent = response.body_length if response.prepared else _body_size(response)
        return response
    finally:
        log.info(
            "%s %s %d in=%d out=%d %dms key=%s",
            request.method,
            request.raw_path,
            status,
            info.received,
            sent,
            round((time.monotonic() - started) * 1000),
            info.key,
        )


def _body_size(response: web.StreamResponse) -> int:
    body = response.body if isinstance(response, web.Response) else None
    return len(body) if isinstance(body, bytes | bytearray) else 0


@web.middleware
async def _track(request: web.Request, handler: Handler) -> web.StreamResponse:
    in_flight = request.app[IN_FLIGHT]
    if in_flight.stopping:
        response: web.StreamResponse = _error_response(
            503, "stopping", "the server is stopping; retry shortly"
        )
    else:
        in_flight.enter()
        try:
            response = await handler(request)
        finally:
            in_flight.leave()
    if in_flight.stopping:  # no further request on this connection
        response.force_close()
    return response


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _error_response(exc.status, exc.code, exc.message)
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
        return _error_response(503, "store_unavailable", exc.message)
    except (PermanentStoreError, TransferdError) as exc:
        log.error("store failure: %s", exc.message)
        return _error_response(500, "store_error", exc.message)
    except Exception:
        log.exception("internal error handling %s %s", request.method, request.raw_path)
        return _error_response(500, "internal", "internal error; see the server's log")


def _error_response(status: int, code: str, message: str) -> web.Response:
    headers = {"WWW-Authenticate": "TD1"} if status == 401 else None
    return web.json_response({"error": message, "code": code}, status=status, headers=headers)


@web.middleware
async def _authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(("/v1/jobs", COPY_PATH)):  # /v1/health, an unknown path
        return await handler(request)
    app = request.app
    creds = parse_authorization(request.headers.get("Authorization"))
    digest = check_content_sha256(request.headers.get(CONTENT_SHA256))
    host = request.headers.get("Host", "")
    if not app[AUTHORIZER].accepts_host(host):
        raise unauthorized(f"this server does not answer for host {host[:64]!r}")
    now = app[CLOCK]()
    verify(
        creds,
        method=request.method,
        target=request.raw_path,
        content_sha256=digest,
        host=host,
        now=now,
    )
    app[NONCES].remember(creds.key, creds.nonce, creds.ts, now)
    info = request_info.get()
    info.key, info.creds, info.digest = creds.key_text[:16] + "…", creds, digest
    job = authorized_name(request)  # a job, or for copy records the job or copy named
    if job is not None:  # GET /v1/jobs filters by key instead
        _authorize(app[AUTHORIZER], creds, job, write=request.method in _WRITE_METHODS)
    return await handler(request)


def _authorize(authorizer: Authorizer, creds: Credentials, job: str, *, write: bool) -> None:
    allowed = authorizer.may_write if write else authorizer.may_read
    if not allowed(creds.key, job):
        raise ApiError(
            403,
            "forbidden",
            f"key {creds.key_text} may not {'write' if write else 'read'} job {job}",
        )
