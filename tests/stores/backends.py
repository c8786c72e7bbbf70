"""The store backends the contract suite runs against, and helpers the transport tests share.

Adding a backend is one entry in BACKENDS: an async context manager that yields a fresh, empty
Store and tears down whatever it started. The HTTP backend is the real thing: a LocalStore behind
the server's app on a real socket on 127.0.0.1, reached by HttpStore.

Coroutine tests run without a plugin: ``pytest_pyfunc_call`` (imported by the conftest files)
runs each ``async def`` test in a fresh event loop with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.stores.s3server import shared_server
from transferd.core import manifest as core_manifest
from transferd.core.jobkey import JobKey, wrap
from transferd.core.keys import RecipientIdentity, SenderPublicKey, SenderSecretKey
from transferd.core.manifest import ManifestBody, Totals
from transferd.core.objectlist import ObjectRef
from transferd.host.auth import Authorizer
from transferd.host.server import make_app
from transferd.stores.base import Store
from transferd.stores.http import HttpStore
from transferd.stores.local import LocalStore
from transferd.stores.memory import MemoryStore
from transferd.stores.s3 import S3Store

SENDER = SenderSecretKey(bytes(range(32)))
"""The one sender the HTTP backend allows on every job; fixed so failures reproduce."""
RECIPIENT = RecipientIdentity(bytes(range(32, 64)))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


@asynccontextmanager
async def serving(app: web.Application, **site: Any) -> AsyncIterator[str]:
    """Serve ``app`` on a free port of 127.0.0.1; yields its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    try:
        tcp = web.TCPSite(runner, "127.0.0.1", 0, **site)
        await tcp.start()
        scheme = "https" if site.get("ssl_context") else "http"
        yield f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def allow_all(*keys: SenderPublicKey) -> Authorizer:
    return Authorizer(writers=[("*", k) for k in keys or (SENDER.public(),)])


@asynccontextmanager
async def memory_backend(tmp: Path) -> AsyncIterator[Store]:
    store = MemoryStore()
    yield store
    await store.close()


@asynccontextmanager
async def local_backend(tmp: Path) -> AsyncIterator[Store]:
    store = LocalStore(tmp / "store")
    yield store
    await store.close()


@asynccontextmanager
async def http_backend(tmp: Path) -> AsyncIterator[Store]:
    async with serving(make_app(LocalStore(tmp / "host"), allow_all())) as url:
        store = HttpStore(url, SENDER, list_page=7)  # small pages: listings cross pages
        try:
            yield store
        finally:
            await store.close()


@asynccontextmanager
async def s3_backend(tmp: Path) -> AsyncIterator[Store]:
    """A fresh bucket of the process's rclone serve s3 (tests/stores/s3server.py); objects over
    5 MiB go in 5 MiB parts, so the suite's large object is a multipart upload."""
    server = shared_server()
    settings = server.settings(
        await server.new_bucket(), "copy/", multipart_threshold=5 << 20, part_size=5 << 20
    )
    store = S3Store(settings, list_page=7)  # small pages: listings cross pages
    try:
        yield store
    finally:
        await store.close()


StoreFactory = Callable[[], AbstractAsyncContextManager[Store]]

BACKENDS: dict[str, Callable[[Path], AbstractAsyncContextManager[Store]]] = {
    "memory": memory_backend,
    "local": local_backend,
    "http": http_backend,
    "s3": s3_backend,
}


def signed_manifest(
    job: str,
    sequence: int,
    sender: SenderSecretKey = SENDER,
    *,
    previous: str | None = None,
    created: str = "2026-11-22T21:00:00Z",
    epoch: int = 0,
) -> bytes:
    """A valid manifest for ``job`` at ``sequence``, signed by ``sender``: no packs, and one
    catalog segment (every manifest names at least one) that the store need not hold."""
    job_key = JobKey(bytes(32))
    stanza = wrap(job_key, RECIPIENT.public(), bytes([7] * 32))
    if sequence > 1 and previous is None:
        previous = "0" * 64
    body = ManifestBody(
        job=job,
        job_id="ab" * 16,
        sequence=sequence,
        created=created,
        previous=previous,
        sender=sender.public().to_text(),
        recipients=(stanza,),
        key_check=job_key.key_check,
        object_lists=(),
        catalog=(ObjectRef(bytes(32), 64),),
        totals=Totals(0, 0),
        epoch=epoch,
    )
    return core_manifest.sign(body, sender)


def random_object(size: int) -> tuple[str, bytes]:
    data = os.urandom(size)
    return hashlib.sha256(data).hexdigest(), data


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A fresh 8 MiB tmpfs: writes past it fail with ENOSPC, as on a full disk.

    Mounting needs root, which CI has (ENVIRONMENT.md); without it the test fails rather than
    hide, and says why (the subprocess test in tests/transport/ covers the same ground inside a
    user namespace).
    """
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root: run the tests as root, as CI does")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_FS_SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


SMALL_FS_SIZE = 8 * 1024 * 1024
