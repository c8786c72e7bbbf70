"""Build signed requests by hand, to send what HttpStore never would (replays, skewed clocks)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from tests.stores.backends import SENDER, allow_all, serving
from transferd.core.keys import SenderSecretKey
from transferd.core.request_signing import CONTENT_SHA256, authorization
from transferd.host.auth import Authorizer
from transferd.host.server import make_app
from transferd.stores.local import LocalStore


def new_nonce() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def signed_headers(
    method: str,
    target: str,
    host: str,
    body: bytes = b"",
    *,
    key: SenderSecretKey = SENDER,
    ts: int | None = None,
    nonce: str | None = None,
    digest: str | None = None,
) -> dict[str, str]:
    digest = digest or hashlib.sha256(body).hexdigest()
    return {
        "Host": host,
        CONTENT_SHA256: digest,
        "Authorization": authorization(
            key,
            method=method,
            target=target,
            content_sha256=digest,
            host=host,
            ts=int(time.time()) if ts is None else ts,
            nonce=nonce or new_nonce(),
        ),
    }


@dataclass
class Answer:
    status: int
    json: Any
    body: bytes
    headers: Any


@dataclass
class Host:
    """A storage host on 127.0.0.1 with a LocalStore, and a raw client to poke it."""

    url: str
    store: LocalStore
    session: aiohttp.ClientSession

    @property
    def host(self) -> str:
        return URL(self.url).raw_authority

    async def send(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        *,
        headers: dict[str, str] | None = None,
        **sign: Any,
    ) -> Answer:
        """Sign (unless ``headers`` are given) and send one request; never raises on status."""
        if headers is None:
            headers = signed_headers(method, target, self.host, body, **sign)
        url = URL(self.url + target, encoded=True)
        async with self.session.request(
            method, url, data=io.BytesIO(body) if body else None, headers=headers
        ) as response:
            data = await response.read()
            try:
                parsed = await response.json(content_type=None)
            except ValueError:
                parsed = None
            return Answer(response.status, parsed, data, response.headers)

    def temp_files(self) -> list[Path]:
        return sorted(p for p in self.store.root.glob("jobs/*/tmp/*") if p.is_file())


@asynccontextmanager
async def storage_host(
    root: Path, authorizer: Authorizer | None = None, **app: Any
) -> AsyncIterator[Host]:
    store = LocalStore(root)
    async with (
        serving(make_app(store, authorizer or allow_all(), **app)) as url,
        aiohttp.ClientSession() as session,
    ):
        yield Host(url, store, session)
