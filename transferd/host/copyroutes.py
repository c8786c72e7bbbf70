"""The storage host's routes for copy records (stores/base.py, clause 7; protocol/HTTP.md).

::

    PUT    /v1/copies/{copy}/manifests/{seq}          201, 409 manifest_exists
    GET    /v1/copies/{copy}/manifests/{seq}          200, 404
    DELETE /v1/copies/{copy}/manifests/{seq}          204
    GET    /v1/copies/{copy}/manifests                {"records": [1, 2, …]}
    …      /v1/copies/{copy}/leases/{job}/{seq}       the same for the leases of one job
    GET    /v1/copies/{copy}/leases/{job}

Who may: a lease of job J is read and written by the keys that may read and write job J; the
copy manifests of copy C by the keys whose job patterns match the name C (a grant ``snds-*``
covers copy ``snds-2026`` and its jobs ``snds-…``). The host stores the bytes as they come,
at most MANIFEST_MAX_SIZE, without parsing them: copy manifests are signed and checked by
whoever reads them (copies/verify.py), and leases are coordination, not proof (THREATS.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from transferd.core.constants import MANIFEST_MAX_SIZE
from transferd.errors import PermanentStoreError
from transferd.stores.base import CopyStore, Store

COPY_PATH = "/v1/copies/"
_COPY = r"{copy:[a-z0-9][a-z0-9._-]{0,63}}"
_JOB = r"{job:[a-z0-9][a-z0-9._-]{0,63}}"
_SEQ = r"{seq:[1-9][0-9]{0,19}}"

BodyReader = Callable[[web.Request, int], Awaitable[bytes]]


def add_copy_routes(
    app: web.Application, store_key: web.AppKey[Store], read_body: BodyReader
) -> None:
    """Add the copy-record routes; ``read_body`` is the server's checked body reader."""

    def store(request: web.Request) -> CopyStore:
        held = request.app[store_key]
        if not isinstance(held, CopyStore):
            raise PermanentStoreError("this host's store does not keep copy records")
        return held

    def series(request: web.Request) -> str:
        job = request.match_info.get("job")
        return "manifests" if job is None else f"leases/{job}"

    async def put(request: web.Request) -> web.Response:
        data = await read_body(request, MANIFEST_MAX_SIZE)
        copy, seq = request.match_info["copy"], int(request.match_info["seq"])
        await store(request).put_copy_record(copy, series(request), seq, data)
        return web.json_response({"sequence": seq, "size": len(data)}, status=201)

    async def get(request: web.Request) -> web.Response:
        await read_body(request, 0)
        copy, seq = request.match_info["copy"], int(request.match_info["seq"])
        data = await store(request).get_copy_record(copy, series(request), seq)
        return web.Response(body=data, content_type="application/octet-stream")

    async def delete(request: web.Request) -> web.Response:
        await read_body(request, 0)
        copy, seq = request.match_info["copy"], int(request.match_info["seq"])
        await store(request).delete_copy_record(copy, series(request), seq)
        return web.Response(status=204)

    async def listing(request: web.Request) -> web.Response:
        await read_body(request, 0)
        records = await store(request).list_copy_records(
            request.match_info["copy"], series(request)
        )
        return web.json_response({"records": records})

    for base in (f"/v1/copies/{_COPY}/manifests", f"/v1/copies/{_COPY}/leases/{_JOB}"):
        app.router.add_put(f"{base}/{_SEQ}", put)
        app.router.add_get(f"{base}/{_SEQ}", get, allow_head=False)
        app.router.add_delete(f"{base}/{_SEQ}", delete)
        app.router.add_get(base, listing, allow_head=False)


def authorized_name(request: web.Request) -> str | None:
    """The name a request's key must be granted: the job of a lease, else the copy."""
    return request.match_info.get("job") or request.match_info.get("copy")
