"""HttpStore: the Store contract over the storage host's HTTP API (protocol/HTTP.md).

Every request is signed with the sender's key (host/auth.py), including reads: the host
serves a job only to the keys its operator allowed. What each failure becomes (the server's
JSON errors, a refused or silent connection, TLS trouble) is stores/httperrors.py's table; an
answer that is not of the shape protocol/HTTP.md gives is a RemoteProtocolError (below). The
transport settings (TLS, bodies sent as views, no silent resends) are stores/httptransport.py.

Retries are not done here: wrap the store in stores.retry.RetryingStore.

TLS: by default the system's trust store; ``ca_file`` trusts a private CA (or a self-signed
certificate given as its own CA); ``pin_sha256`` accepts exactly one certificate, named by the
SHA-256 of its DER bytes (``openssl x509 -noout -fingerprint -sha256``), for a self-signed host
whose name is not in its certificate.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiohttp
import aiohttp.abc
import aiohttp.payload
from yarl import URL

from transferd.core.keys import SenderSecretKey
from transferd.core.manifest import ManifestKey
from transferd.core.request_signing import CONTENT_SHA256, authorization
from transferd.errors import (
    ConfigError,
    IntegrityError,
    ObjectNotFoundError,
    PermanentStoreError,
    RemoteProtocolError,
    TransientStoreError,
)
from transferd.stores.base import (
    HAVE_BATCH,
    check_copy_name,
    check_copy_series,
    check_job,
    check_object_name,
)
from transferd.stores.httperrors import answer_error, connection_failure, speaks_tls
from transferd.stores.httptransport import BufferPayload, host_header, no_resend, ssl_option

LIST_PAGE = 10_000
_OBJECT = re.compile(r"[0-9a-f]{64}")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class HttpStore:
    """A Store reached over HTTP(S), every request signed with ``sender_key``."""

    def __init__(
        self,
        url: str,
        sender_key: SenderSecretKey,
        *,
        session: aiohttp.ClientSession | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        pin_sha256: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 60.0,
        clock: Callable[[], float] = time.time,
        list_page: int = LIST_PAGE,
    ) -> None:
        base = URL(url.rstrip("/"))
        if base.scheme not in ("http", "https") or not base.host:
            raise ConfigError(f"store URL {url!r} is not http(s)://HOST[:PORT][/PATH]")
        if base.user or base.password or base.query_string or base.fragment:
            raise ConfigError(
                "a store URL holds no credentials, query or fragment: the sender key signs "
                "every request"
            )
        if base.scheme == "http" and (ca_file or pin_sha256 or ssl_context):
            raise ConfigError(f"TLS options given for {url}, which is not https")
        self.description = str(base)
        self._base = base
        self._host = host_header(base)
        self._key = sender_key
        self._clock = clock
        self._timeout = timeout
        self._ssl = ssl_option(ssl_context, ca_file, pin_sha256)
        self._session = session
        self._owns_session = session is None
        if session is not None:
            no_resend(session)
        self._list_page = list_page
        shown = base.raw_host or ""
        self._hostport = f"[{shown}]:{base.port}" if ":" in shown else f"{shown}:{base.port}"
        """HOST:PORT as messages name it, the port always shown."""
        self._answered = False
        """Whether this host answered once: a refused connection after that is a restart."""

    # --- the contract ---------------------------------------------------------------------

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        check_job(job)
        check_object_name(name)
        try:
            await self._request(
                "PUT",
                f"/v1/jobs/{job}/objects/{name}",
                f"storing object {name} of job {job}",
                body=data,
                digest=name,
                expect=(201,),
            )
        except TransientStoreError:
            # The host stores nothing that does not hash to its name (it checks the signed
            # digest, which is the name), so the body is hashed here only when an upload fails:
            # to tell wrong bytes from the caller (permanent) from bytes altered on the way
            # (retry). Hashing every pack before sending cost a pass over all the data.
            if await asyncio.to_thread(_sha256_hex, data) != name:
                raise IntegrityError(f"object {name} does not hash to its name") from None
            raise

    async def has_objects(self, job: str, names: Sequence[str]) -> set[str]:
        check_job(job)
        wanted = sorted({n for n in names if isinstance(n, str) and _OBJECT.fullmatch(n)})
        held: set[str] = set()
        for start in range(0, len(wanted), HAVE_BATCH):
            batch = wanted[start : start + HAVE_BATCH]
            _, _, answer = await self._request(
                "POST",
                f"/v1/jobs/{job}/objects/have",
                f"asking which of {len(batch)} objects job {job} holds",
                body=json.dumps(batch).encode(),
                content_type="application/json",
            )
            what = f"asking which objects job {job} holds"
            names = self._json(answer, list, what)
            held.update(self._check(n, str, what) for n in names if n in batch)
        return held

    async def get_object(
        self, job: str, name: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        check_job(job)
        check_object_name(name)
        if offset < 0 or (length is not None and length < 0):
            raise PermanentStoreError(f"cannot read object {name}: negative offset or length")
        what = f"reading object {name} of job {job}"
        if length == 0:  # no Range header can ask for zero bytes; only existence matters
            if name not in await self.has_objects(job, [name]):
                raise ObjectNotFoundError(
                    f"object {name} of job {job} is not in the store", job=job, key=name
                )
            return b""
        headers = {}
        if offset or length is not None:
            last = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{last}"
        status, _, data = await self._request(
            "GET", f"/v1/jobs/{job}/objects/{name}", what, headers=headers, expect=(200, 206, 416)
        )
        if status == 416:  # the range starts at or past the end
            return b""
        if status == 200 and headers:  # the server sent the whole object
            data = data[offset : None if length is None else offset + length]
        return data

    async def list_objects(self, job: str) -> AsyncIterator[tuple[str, int]]:
        check_job(job)
        after: str | None = None
        while True:
            query = f"?limit={self._list_page}" + (f"&after={after}" if after else "")
            try:
                _, _, answer = await self._request(
                    "GET", f"/v1/jobs/{job}/objects{query}", f"listing the objects of job {job}"
                )
            except ObjectNotFoundError:  # unknown job: holds nothing
                return
            what = f"listing the objects of job {job}"
            page = self._json(answer, dict, what)
            for entry in self._check(page.get("objects", []), list, what):
                entry = self._check(entry, dict, what)
                yield (
                    self._check(entry.get("name"), str, what),
                    self._check(entry.get("size"), int, what),
                )
            after = self._check(page.get("next"), (str, type(None)), what)
            if not after:
                return

    async def delete_object(self, job: str, name: str) -> None:
        check_job(job)
        check_object_name(name)
        await self._request(
            "DELETE",
            f"/v1/jobs/{job}/objects/{name}",
            f"deleting object {name} of job {job}",
            expect=(204,),
        )

    async def put_manifest(self, job: str, sequence: int, data: bytes, epoch: int = 0) -> None:
        check_job(job)
        await self._request(
            "PUT",
            f"/v1/jobs/{job}/manifests/{_key(sequence, epoch)}",
            f"storing manifest {ManifestKey(sequence, epoch)} of job {job}",
            body=bytes(data),
            expect=(201,),
        )

    async def get_manifest(self, job: str, sequence: int, epoch: int = 0) -> bytes:
        check_job(job)
        _, _, data = await self._request(
            "GET",
            f"/v1/jobs/{job}/manifests/{_key(sequence, epoch)}",
            f"reading manifest {ManifestKey(sequence, epoch)} of job {job}",
        )
        return data

    async def list_manifests(self, job: str) -> list[ManifestKey]:
        check_job(job)
        try:
            _, _, answer = await self._request(
                "GET", f"/v1/jobs/{job}/manifests", f"listing the manifests of job {job}"
            )
        except ObjectNotFoundError:
            return []
        what = f"listing the manifests of job {job}"
        keys = [ManifestKey(n) for n in self._numbers(answer, "manifests", what)]
        for pair in self._check(self._json(answer, dict, what).get("epochs", []), list, what):
            if not isinstance(pair, list) or len(pair) != 2:
                raise self._unreadable(what, "an epochs entry that is not [sequence, epoch]")
            sequence, epoch = (self._check(n, int, what) for n in pair)
            if sequence < 1 or epoch < 1:
                raise self._unreadable(what, "an epochs entry below 1")
            keys.append(ManifestKey(sequence, epoch))
        return sorted(keys)

    async def list_jobs(self) -> list[str]:
        _, _, answer = await self._request("GET", "/v1/jobs", "listing jobs")
        what = "listing jobs"
        jobs = self._check(self._json(answer, dict, what).get("jobs"), list, what)
        return sorted(self._check(j, str, what) for j in jobs)

    # --- copy records (host/copyroutes.py) --------------------------------------------

    def _series_path(self, copy: str, series: str) -> str:
        return f"/v1/copies/{check_copy_name(copy)}/{check_copy_series(series)}"

    async def put_copy_record(self, copy: str, series: str, sequence: int, data: bytes) -> None:
        await self._request(
            "PUT",
            f"{self._series_path(copy, series)}/{_sequence(sequence)}",
            f"storing record {sequence} of {series} of copy {copy}",
            body=bytes(data),
            expect=(201,),
        )

    async def get_copy_record(self, copy: str, series: str, sequence: int) -> bytes:
        _, _, data = await self._request(
            "GET",
            f"{self._series_path(copy, series)}/{_sequence(sequence)}",
            f"reading record {sequence} of {series} of copy {copy}",
        )
        return data

    async def list_copy_records(self, copy: str, series: str) -> list[int]:
        _, _, answer = await self._request(
            "GET", self._series_path(copy, series), f"listing {series} of copy {copy}"
        )
        return self._numbers(answer, "records", f"listing {series} of copy {copy}")

    async def delete_copy_record(self, copy: str, series: str, sequence: int) -> None:
        await self._request(
            "DELETE",
            f"{self._series_path(copy, series)}/{_sequence(sequence)}",
            f"deleting record {sequence} of {series} of copy {copy}",
            expect=(204,),
        )

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    # --- one signed request ---------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        body: bytes | bytearray | memoryview = b"",
        digest: str | None = None,
        content_type: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> tuple[int, Any, bytes]:
        """Send one signed request; the status, headers and body of an expected answer."""
        target = self._base.raw_path.rstrip("/") + path
        digest = digest or (hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256)
        nonce = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")
        sent = dict(headers or {})
        sent["Host"] = self._host
        sent[CONTENT_SHA256] = digest
        sent["Authorization"] = authorization(
            self._key,
            method=method,
            target=target,
            content_sha256=digest,
            host=self._host,
            ts=int(self._clock()),
            nonce=nonce,
        )
        if body:
            sent["Content-Type"] = content_type
        url = URL(str(self._base.origin()) + target, encoded=True)
        try:
            session = self._open_session()
            async with session.request(
                method,
                url,
                data=BufferPayload(body, content_type) if body else None,
                headers=sent,
                ssl=self._ssl,
            ) as response:
                data = await response.read()
                status = response.status
                response_headers = response.headers
        except Exception as exc:
            failure = connection_failure(
                exc, what, where=self._hostport, description=self.description,
                timeout=self._timeout, answered=self._answered,
            )  # fmt: skip
            if failure is None:
                raise
            if (
                isinstance(exc, aiohttp.ServerDisconnectedError)
                and self._base.scheme == "http"
                and not self._answered
                and await speaks_tls(self._base.raw_host or "", self._base.port or 80)
            ):
                failure = PermanentStoreError(
                    f"{what}: {self._hostport} closed the connection without answering: "
                    "it speaks TLS",
                    hint=f"use https://{self._hostport}",
                )
            raise failure from None
        self._answered = True
        if status in expect:
            return status, response_headers, data
        raise answer_error(
            status, data, what, self.description, response_headers.get("Retry-After")
        )

    # --- answers: the shapes of protocol/HTTP.md, or a RemoteProtocolError ------------------

    def _unreadable(self, what: str, problem: str) -> RemoteProtocolError:
        return RemoteProtocolError(
            f"{what}: the host at {self.description} sent an answer transferd cannot read: "
            f"{problem}",
            peer=self.description,
            problem=problem,
        )

    def _json(self, data: bytes, kind: type, what: str) -> Any:
        """The JSON answer ``data``, which must be of ``kind`` (an object, a list)."""
        try:
            value = json.loads(data)
        except ValueError:
            start = data[:40].decode("utf-8", "replace")
            raise self._unreadable(what, f"not JSON ({len(data)} bytes: {start!r})") from None
        return self._check(value, kind, what)

    def _check(self, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
        """``value`` if it is of ``kind``; a bool is not an int here, as it is not in JSON."""
        if isinstance(value, kind) and not (isinstance(value, bool) and kind is int):
            return value
        names = kind if isinstance(kind, tuple) else (kind,)
        wanted = " or ".join(_JSON_NAMES.get(k, k.__name__) for k in names)
        got = _JSON_NAMES.get(type(value), type(value).__name__)
        raise self._unreadable(what, f"{got} where {wanted} was expected")

    def _numbers(self, data: bytes, key: str, what: str) -> list[int]:
        """The sorted sequence numbers under ``key`` of a listing: ``{"manifests": [1, 2]}``."""
        numbers = self._check(self._json(data, dict, what).get(key), list, what)
        return sorted(self._check(n, int, what) for n in numbers)

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self._timeout, sock_read=self._timeout
                ),
            )
            self._owns_session = True
            no_resend(self._session)
        return self._session


def _sha256_hex(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _key(sequence: int, epoch: int) -> str:
    """A manifest's name in a URL: its sequence, and ``-EPOCH`` when written under a lease."""
    return _sequence(sequence) if not epoch else f"{_sequence(sequence)}-{_sequence(epoch)}"


def _sequence(sequence: int) -> str:
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        raise PermanentStoreError(f"manifest sequence {sequence!r} is out of range")
    return str(sequence)


_JSON_NAMES: dict[type, str] = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}
