"""The storage host's routes for jobs: objects and manifests (protocol/HTTP.md §7).

Every handler here runs after ``server._authenticate`` verified the request and the key's access to
the job, and reads its body only through ``context.read_body`` (capped, checked against the signed
digest) or, for an object put into a store that writes as the body arrives, ``context.body_parts``
(capped; the store checks the hash before the object gets its name). ``PUT objects/{name}``
answers 201 only once the store's ``put_object`` (or ``put_object_stream``) returned, which is
once the object is durable.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

from aiohttp import web

from transferd.core import manifest as core_manifest
from transferd.core.constants import MANIFEST_MAX_SIZE, PACK_MAX_SIZE
from transferd.core.keys import SenderPublicKey, parse_key_text
from transferd.core.manifest import ManifestKey
from transferd.errors import ApiError, FormatError, IntegrityError, ObjectNotFoundError
from transferd.host.auth import digests_equal
from transferd.host.context import (
    AUTHORIZER,
    STORE,
    UPLOADS,
    body_parts,
    check_length,
    read_body,
    request_info,
)
from transferd.stores.base import HAVE_BATCH, Store

LIST_LIMIT_DEFAULT = 1000
LIST_LIMIT_MAX = 10_000
"""Entries per listing page: about 900 KiB of JSON, so one page is one quick response."""
HAVE_BODY_MAX = HAVE_BATCH * 72 + 2
"""A JSON list of HAVE_BATCH quoted 64-digit names with separators."""

_JOB = r"{job:[a-z0-9][a-z0-9._-]{0,63}}"
_NAME = r"{name:[0-9a-f]{64}}"
_SEQ = r"{seq:[1-9][0-9]{0,19}(?:-[1-9][0-9]{0,19})?}"
"""A manifest's sequence, and ``-EPOCH`` for one written under a lease (SPEC 12.2)."""
_HEX64 = re.compile(r"[0-9a-f]{64}")
_RANGE = re.compile(r"bytes=([0-9]{1,19})-([0-9]{0,19})")


def add_job_routes(app: web.Application) -> None:
    """Add /v1/jobs and the per-job routes of objects and manifests."""
    jobs = f"/v1/jobs/{_JOB}"
    app.router.add_get("/v1/jobs", _list_jobs, allow_head=False)
    app.router.add_post(f"{jobs}/objects/have", _have_objects)
    app.router.add_put(f"{jobs}/objects/{_NAME}", _put_object)
    app.router.add_get(f"{jobs}/objects/{_NAME}", _get_object, allow_head=False)
    app.router.add_delete(f"{jobs}/objects/{_NAME}", _delete_object)
    app.router.add_get(f"{jobs}/objects", _list_objects, allow_head=False)
    app.router.add_put(f"{jobs}/manifests/{_SEQ}", _put_manifest)
    app.router.add_get(f"{jobs}/manifests", _list_manifests, allow_head=False)
    app.router.add_get(f"{jobs}/manifests/{_SEQ}", _get_manifest, allow_head=False)


async def _list_jobs(request: web.Request) -> web.Response:
    """The jobs holding something that the signing key may read."""
    await read_body(request, 0)
    creds, authorizer = request_info.get().creds, request.app[AUTHORIZER]
    jobs = await request.app[STORE].list_jobs()
    return web.json_response(
        {"jobs": [j for j in jobs if creds is not None and authorizer.may_read(creds.key, j)]}
    )


async def _put_object(request: web.Request) -> web.Response:
    job, name = request.match_info["job"], request.match_info["name"]
    if not digests_equal(name, request_info.get().digest):
        raise ApiError(400, "corrupt_body", f"the body's digest is not the object's name {name}")
    # The digest is the name (checked above), and every store refuses bytes that do not hash to
    # their name (IntegrityError, answered 400 corrupt_body like a digest mismatch): hashing the
    # body here as well was a second SHA-256 pass over every pack the host receives.
    store = request.app[STORE]
    stream = getattr(store, "put_object_stream", None)
    check_length(request, PACK_MAX_SIZE)
    # A slot before the first byte of the body is read: uploads over the cap wait (their bytes
    # held back by TCP), then are answered 503 busy with Retry-After (admission.UploadSlots).
    async with request.app[UPLOADS].hold():
        if stream is not None:  # a local directory: written as it arrives, then fsynced
            size: int = await stream(job, name, body_parts(request, PACK_MAX_SIZE))
        else:
            data = await read_body(request, PACK_MAX_SIZE, check_digest=False)
            await store.put_object(job, name, data)
            size = len(data)
    # either way, answered only once the object is durable
    return web.json_response({"name": name, "size": size}, status=201)


async def _have_objects(request: web.Request) -> web.Response:
    job = request.match_info["job"]
    body = await read_body(request, HAVE_BODY_MAX)
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
    await read_body(request, 0)
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
    await read_body(request, 0)
    await request.app[STORE].delete_object(request.match_info["job"], request.match_info["name"])
    return web.Response(status=204)


async def _list_objects(request: web.Request) -> web.Response:
    job = request.match_info["job"]
    await read_body(request, 0)
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


def _manifest_key(request: web.Request) -> ManifestKey:
    sequence, _, epoch = request.match_info["seq"].partition("-")
    return ManifestKey(int(sequence), int(epoch or 0))


async def _put_manifest(request: web.Request) -> web.Response:
    job, (sequence, epoch) = request.match_info["job"], _manifest_key(request)
    data = await read_body(request, MANIFEST_MAX_SIZE)
    try:
        manifest = core_manifest.parse(data)
    except (FormatError, IntegrityError) as exc:
        raise ApiError(400, "bad_request", f"manifest refused: {exc.message}") from None
    body = manifest.body
    if body.job != job or body.key != (sequence, epoch):
        raise ApiError(
            400,
            "bad_request",
            f"manifest is for job {body.job} sequence {body.key}, "
            f"but was sent as job {job} sequence {ManifestKey(sequence, epoch)}",
        )
    signer = parse_key_text(body.sender)  # a tds1 key: ManifestBody.from_json checked it
    if not isinstance(signer, SenderPublicKey) or not request.app[AUTHORIZER].may_write(
        signer, job
    ):
        raise ApiError(
            403, "forbidden", f"manifest is signed by {body.sender}, which may not write job {job}"
        )
    await request.app[STORE].put_manifest(job, sequence, data, epoch)
    answer: dict[str, object] = {"job": job, "sequence": sequence}
    if epoch:
        answer["epoch"] = epoch
    return web.json_response(answer, status=201)


async def _list_manifests(request: web.Request) -> web.Response:
    job = request.match_info["job"]
    await read_body(request, 0)
    store = request.app[STORE]
    keys = await store.list_manifests(job)
    if not keys:
        await _check_job_exists(store, job)
    answer: dict[str, object] = {"manifests": [k.sequence for k in keys if not k.epoch]}
    leased = [[k.sequence, k.epoch] for k in keys if k.epoch]
    if leased:  # manifests written under a lease (SPEC 12.2): [sequence, epoch] each
        answer["epochs"] = leased
    return web.json_response(answer)


async def _get_manifest(request: web.Request) -> web.Response:
    job, (sequence, epoch) = request.match_info["job"], _manifest_key(request)
    await read_body(request, 0)
    store = request.app[STORE]
    try:
        data = await store.get_manifest(job, sequence, epoch)
    except ObjectNotFoundError:
        await _check_job_exists(store, job)
        raise
    return web.Response(body=data, content_type="application/octet-stream")


async def _check_job_exists(store: Store, job: str) -> None:
    if job not in await store.list_jobs():
        raise ApiError(404, "unknown_job", f"job {job} has nothing stored on this host")
