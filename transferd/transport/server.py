"""The storage host: an aiohttp application that puts a Store behind the API of protocol/HTTP.md.

``make_app`` is the app factory: tests build the same application the command runs. State lives
under typed ``web.AppKey``s; the store is closed by a cleanup context, so it is torn down only if
the application started. Four middlewares wrap every handler, outermost first:

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

``run_server`` serves an application on uvloop, with TLS when given a certificate, until SIGTERM
or SIGINT. It then stops listening and waits (up to ``shutdown_timeout``) until no request is in
flight, *before* handing over to aiohttp's own shutdown (close connections, cancel what is left,
run the cleanup contexts). The extra step is needed because aiohttp, once shutting down, drops
bytes arriving on open connections (aio-libs/aiohttp#2298): an upload whose body was still
arriving would stall and be cancelled, whereas a storage host should finish the 64 MiB pack it
was receiving rather than make the sender send it again.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import os
import re
import signal
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from transferd.core import manifest as core_manifest
from transferd.core.constants import MANIFEST_MAX_SIZE, PACK_MAX_SIZE
from transferd.core.keys import SenderPublicKey, parse_key_text
from transferd.errors import (
    ConfigError,
    FormatError,
    IntegrityError,
    PermanentStoreError,
    StoreFullError,
    TransferdError,
    TransientStoreError,
)
from transferd.stores.base import HAVE_BATCH, ManifestExistsError, ObjectNotFoundError, Store
from transferd.transport.auth import (
    CONTENT_SHA256,
    ApiError,
    Authorizer,
    Credentials,
    NonceCache,
    check_content_sha256,
    digests_equal,
    parse_authorization,
    unauthorized,
    verify,
)
from transferd.transport.copyroutes import COPY_PATH, add_copy_routes, authorized_name

log = logging.getLogger("transferd.serve")

STORE: web.AppKey[Store] = web.AppKey("store")
AUTHORIZER: web.AppKey[Authorizer] = web.AppKey("authorizer", Authorizer)
NONCES: web.AppKey[NonceCache] = web.AppKey("nonces", NonceCache)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")


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

LIST_LIMIT_DEFAULT = 1000
LIST_LIMIT_MAX = 10_000
"""Entries per listing page: about 900 KiB of JSON, so one page is one quick response."""
HAVE_BODY_MAX = HAVE_BATCH * 72 + 2
"""A JSON list of HAVE_BATCH quoted 64-digit names with separators."""

_JOB = r"{job:[a-z0-9][a-z0-9._-]{0,63}}"
_NAME = r"{name:[0-9a-f]{64}}"
_SEQ = r"{seq:[1-9][0-9]{0,19}}"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_RANGE = re.compile(r"bytes=([0-9]{1,19})-([0-9]{0,19})")
_WRITE_METHODS = frozenset({"PUT", "DELETE"})


@dataclass
class _RequestInfo:
    """What the log line needs to know about a request, filled in as it is handled."""

    key: str = "-"
    creds: Credentials | None = None
    digest: str = ""
    received: int = 0


_request_info: contextvars.ContextVar[_RequestInfo] = contextvars.ContextVar("request_info")

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
    jobs = f"/v1/jobs/{_JOB}"
    app.router.add_get("/v1/health", _health)
    app.router.add_get("/v1/jobs", _list_jobs, allow_head=False)
    app.router.add_post(f"{jobs}/objects/have", _have_objects)
    app.router.add_put(f"{jobs}/objects/{_NAME}", _put_object)
    app.router.add_get(f"{jobs}/objects/{_NAME}", _get_object, allow_head=False)
    app.router.add_delete(f"{jobs}/objects/{_NAME}", _delete_object)
    app.router.add_get(f"{jobs}/objects", _list_objects, allow_head=False)
    app.router.add_put(f"{jobs}/manifests/{_SEQ}", _put_manifest)
    app.router.add_get(f"{jobs}/manifests", _list_manifests, allow_head=False)
    app.router.add_get(f"{jobs}/manifests/{_SEQ}", _get_manifest, allow_head=False)
    add_copy_routes(app, STORE, _read_body)
    return app


async def _close_store(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[STORE].close()


# --- middlewares ------------------------------------------------------------------------------


@web.middleware
async def _log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    info = _RequestInfo()
    _request_info.set(info)
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
    info = _request_info.get()
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


async def _read_body(request: web.Request, cap: int) -> bytes:
    """The whole body, at most ``cap`` bytes, checked against the signed digest."""
    info = _request_info.get()
    declared = request.content_length
    if declared is not None and declared > cap:
        raise ApiError(413, "too_large", f"body of {declared} bytes exceeds the {cap}-byte limit")
    hasher, parts = hashlib.sha256(), []
    try:
        async for part in request.content.iter_any():
            info.received += len(part)
            if info.received > cap:
                raise ApiError(413, "too_large", f"body exceeds the {cap}-byte limit")
            hasher.update(part)
            parts.append(part)
    except (ConnectionError, HttpProcessingError) as exc:
        # The client went away or the framing broke mid-body: nothing is stored.
        raise ApiError(400, "corrupt_body", f"the body ended early: {exc}") from None
    if not digests_equal(hasher.hexdigest(), info.digest):
        raise ApiError(
            400,
            "corrupt_body",
            f"the body does not match its {CONTENT_SHA256}: it was altered or cut short",
        )
    return b"".join(parts)


# --- handlers ---------------------------------------------------------------------------------


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _list_jobs(request: web.Request) -> web.Response:
    """The jobs holding something that the signing key may read."""
    await _read_body(request, 0)
    creds, authorizer = _request_info.get().creds, request.app[AUTHORIZER]
    jobs = await request.app[STORE].list_jobs()
    return web.json_response(
        {"jobs": [j for j in jobs if creds is not None and authorizer.may_read(creds.key, j)]}
    )


async def _put_object(request: web.Request) -> web.Response:
    job, name = request.match_info["job"], request.match_info["name"]
    if not digests_equal(name, _request_info.get().digest):
        raise ApiError(400, "corrupt_body", f"the body's digest is not the object's name {name}")
    data = await _read_body(request, PACK_MAX_SIZE)
    await request.app[STORE].put_object(job, name, data)  # returns once durable
    return web.json_response({"name": name, "size": len(data)}, status=201)


async def _have_objects(request: web.Request) -> web.Response:
    job = request.match_info["job"]
    body = await _read_body(request, HAVE_BODY_MAX)
    try:
        names = json.loads(body)
    except ValueError:
        names = None
    if (
        not isinstance(names, list)
        or len(names) > HAVE_BATCH
        or not all(isinstance(n, str) and _HEX64.fullmatch(n) for n in names)
    ):
        raise ApiError(
            400, "bad_request", f"expected a JSON list of at most {HAVE_BATCH} object names"
        )
    held = await request.app[STORE].has_objects(job, names)
    return web.json_response(sorted(held))


async def _get_object(request: web.Request) -> web.Response:
    job, name = request.match_info["job"], request.match_info["name"]
    await _read_body(request, 0)
    offset, length = _parse_range(request.headers.get("Range"))
    store = request.app[STORE]
    try:
        data = await store.get_object(job, name, offset, length)
    except ObjectNotFoundError:
        await _check_job_exists(store, job)
        raise
    if request.headers.get("Range") is None or (offset == 0 and length is None):
        return web.Response(body=data, content_type="application/octet-stream")
    if not data:
        return web.json_response(
            {"error": f"range starts at or after the end of object {name}", "code": "bad_range"},
            status=416,
            headers={"Content-Range": "bytes */*"},
        )
    end = offset + len(data) - 1
    return web.Response(
        body=data,
        status=206,
        content_type="application/octet-stream",
        headers={"Content-Range": f"bytes {offset}-{end}/*"},
    )


def _parse_range(value: str | None) -> tuple[int, int | None]:
    """``bytes=a-b`` or ``bytes=a-``; other forms (suffix, several ranges) are ignored, which
    HTTP allows: the whole object is sent with 200."""
    if value is None:
        return 0, None
    match = _RANGE.fullmatch(value.strip())
    if match is None:
        return 0, None
    first, last = int(match[1]), match[2]
    if last == "":
        return first, None
    if int(last) < first:
        raise ApiError(400, "bad_request", f"range {value!r} ends before it starts")
    return first, int(last) - first + 1


async def _delete_object(request: web.Request) -> web.Response:
    await _read_body(request, 0)
    await request.app[STORE].delete_object(request.match_info["job"], request.match_info["name"])
    return web.Response(status=204)


async def _list_objects(request: web.Request) -> web.Response:
    job = request.match_info["job"]
    await _read_body(request, 0)
    after = request.query.get("after")
    if after is not None and not _HEX64.fullmatch(after):
        raise ApiError(400, "bad_request", "after must be an object name (64 hex digits)")
    try:
        limit = int(request.query.get("limit", LIST_LIMIT_DEFAULT))
    except ValueError:
        limit = 0
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise ApiError(400, "bad_request", f"limit must be between 1 and {LIST_LIMIT_MAX}")
    store = request.app[STORE]
    page = await _page(store.list_objects(job), after, limit)
    if not page and after is None:
        await _check_job_exists(store, job)
    next_after = page[-1][0] if len(page) == limit else None
    objects = [{"name": n, "size": s} for n, s in page]
    return web.json_response({"objects": objects, "next": next_after})


async def _page(
    entries: AsyncIterator[tuple[str, int]], after: str | None, limit: int
) -> list[tuple[str, int]]:
    """The ``limit`` smallest names above ``after``, in order.

    The Store contract fixes no listing order, so every page reads the whole listing: memory is
    bounded by 2 x limit, time is linear per page. A contract with ordered listings from a
    starting point would make each page cost only itself (see protocol/HTTP.md, "Listing").
    """
    kept: list[tuple[str, int]] = []
    async for name, size in entries:
        if after is None or name > after:
            kept.append((name, size))
            if len(kept) >= 2 * limit:
                kept.sort()
                del kept[limit:]
    kept.sort()
    return kept[:limit]


async def _put_manifest(request: web.Request) -> web.Response:
    job, sequence = request.match_info["job"], int(request.match_info["seq"])
    data = await _read_body(request, MANIFEST_MAX_SIZE)
    try:
        manifest = core_manifest.parse(data)
    except (FormatError, IntegrityError) as exc:
        raise ApiError(400, "bad_request", f"manifest refused: {exc.message}") from None
    body = manifest.body
    if body.job != job or body.sequence != sequence:
        raise ApiError(
            400,
            "bad_request",
            f"manifest is for job {body.job} sequence {body.sequence}, "
            f"but was sent as job {job} sequence {sequence}",
        )
    signer = parse_key_text(body.sender)  # a tds1 key: ManifestBody.from_json checked it
    if not isinstance(signer, SenderPublicKey) or not request.app[AUTHORIZER].may_write(
        signer, job
    ):
        raise ApiError(
            403, "forbidden", f"manifest is signed by {body.sender}, which may not write job {job}"
        )
    await request.app[STORE].put_manifest(job, sequence, data)
    return web.json_response({"job": job, "sequence": sequence}, status=201)


async def _list_manifests(request: web.Request) -> web.Response:
    job = request.match_info["job"]
    await _read_body(request, 0)
    store = request.app[STORE]
    sequences = await store.list_manifests(job)
    if not sequences:
        await _check_job_exists(store, job)
    return web.json_response({"manifests": sequences})


async def _get_manifest(request: web.Request) -> web.Response:
    job, sequence = request.match_info["job"], int(request.match_info["seq"])
    await _read_body(request, 0)
    store = request.app[STORE]
    try:
        data = await store.get_manifest(job, sequence)
    except ObjectNotFoundError:
        await _check_job_exists(store, job)
        raise
    return web.Response(body=data, content_type="application/octet-stream")


async def _check_job_exists(store: Store, job: str) -> None:
    if job not in await store.list_jobs():
        raise ApiError(404, "unknown_job", f"job {job} has nothing stored on this host")


# --- running ----------------------------------------------------------------------------------


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert} and key {key}: {exc}") from None
    return context


async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None,
    on_listening: Callable[[str], None],
    stop: asyncio.Event,
    shutdown_timeout: float = 60.0,
) -> None:
    """Serve ``app`` until ``stop`` is set, then shut down gracefully."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ConfigError(f"cannot listen on {host}:{port}: {reason.lower()}") from None
        bound_port = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        on_listening(f"{'https' if ssl_context else 'http'}://{shown}:{bound_port}")
        await stop.wait()
        in_flight = app[IN_FLIGHT]
        in_flight.stopping = True
        await site.stop()
        log.info("stopping: no new connections, finishing %d requests", in_flight.count)
        try:
            await asyncio.wait_for(in_flight.wait_idle(), shutdown_timeout)
        except TimeoutError:
            log.warning("%d requests still running after %g s", in_flight.count, shutdown_timeout)
    finally:
        await runner.cleanup()


def run_server(
    store: Store,
    listen: tuple[str, int],
    authorizer: Authorizer,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    on_listening: Callable[[str], None] = print,
    shutdown_timeout: float = 60.0,
) -> None:
    """Serve ``store`` on uvloop until SIGTERM or SIGINT; returns after a graceful shutdown."""
    from transferd.runtime import run  # installs uvloop: only for a process that serves

    ssl_context = tls_context(tls_cert, tls_key) if tls_cert and tls_key else None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        app = make_app(store, authorizer)
        await serve(
            app,
            *listen,
            ssl_context=ssl_context,
            on_listening=on_listening,
            stop=stop,
            shutdown_timeout=shutdown_timeout,
        )

    run(main())
