"""HttpStore against a real host: each failure arrives as the contract's error, with its reason."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import socket
import time
from pathlib import Path

import pytest

from tests.host.signing import storage_host
from tests.stores.backends import SENDER, SMALL_FS_SIZE, allow_all, random_object, serving
from transferd.core.keys import SenderSecretKey
from transferd.errors import (
    ClockSkewError,
    ConfigError,
    PermanentStoreError,
    StoreFullError,
    TransientStoreError,
)
from transferd.host.server import make_app
from transferd.stores.http import HttpStore
from transferd.stores.memory import MemoryStore
from transferd.stores.retry import RetryingStore

JOB = "dcir"


async def test_a_store_on_a_small_disk_answers_507_and_keeps_nothing_partial(
    small_fs: Path,
) -> None:
    third = SMALL_FS_SIZE * 3 // 8
    kept = [random_object(third) for _ in range(2)]
    name, data = random_object(third)
    async with storage_host(small_fs / "store") as host:
        client = HttpStore(host.url, SENDER)
        try:
            for n, d in kept:
                await client.put_object(JOB, n, d)
            raw = await host.send("PUT", f"/v1/jobs/{JOB}/objects/{name}", data)

            with pytest.raises(StoreFullError) as caught:
                await client.put_object(JOB, name, data)

            assert (raw.status, raw.json["code"]) == (507, "out_of_space")
            assert f"the store at {small_fs / 'store'} is out of space" in caught.value.message
            assert host.temp_files() == []
            assert sorted([e async for e in client.list_objects(JOB)]) == sorted(
                (n, len(d)) for n, d in kept
            )
            for n, _ in kept:
                assert hashlib.sha256(await client.get_object(JOB, n)).hexdigest() == n

            await client.delete_object(JOB, kept[0][0])
            await client.put_object(JOB, name, data)

            assert await client.get_object(JOB, name) == data
        finally:
            await client.close()


async def test_a_refused_key_is_permanent_and_says_why(tmp_path: Path) -> None:
    other = SenderSecretKey(bytes([8] * 32))
    async with storage_host(tmp_path / "s") as host:
        client = HttpStore(host.url, other)
        try:
            with pytest.raises(PermanentStoreError) as caught:
                await client.put_object(JOB, *random_object(10))
        finally:
            await client.close()

    assert f"answered 403 forbidden: key {other.public().to_text()} has no grant on this host" in (
        caught.value.message
    )


async def test_a_client_clock_off_by_400_s_is_told_to_fix_its_clock(tmp_path: Path) -> None:
    async with storage_host(tmp_path / "s") as host:
        client = HttpStore(host.url, SENDER, clock=lambda: time.time() - 400)
        try:
            with pytest.raises(ClockSkewError) as caught:
                await client.list_manifests(JOB)
        finally:
            await client.close()

    assert "answered 401 clock_skew: clock skew of 400 s exceeds the allowed 300 s" in (
        caught.value.message
    )
    assert isinstance(caught.value, PermanentStoreError)  # not retried
    assert 400 <= (caught.value.skew_seconds or 0) <= 401  # our clock is behind the host's
    assert caught.value.fields["limit_seconds"] == 300
    assert caught.value.hint is not None
    assert "NTP" in caught.value.hint


async def test_a_host_that_is_not_listening_is_permanent_until_it_answered_once(
    tmp_path: Path,
) -> None:
    """Nothing listening is a wrong URL or a host not started: no retry. Once the host has
    answered, a refused connection is the host restarting: retried."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = HttpStore(f"http://127.0.0.1:{port}", SENDER)
    try:
        refused = re.escape(f"nothing listens on 127.0.0.1:{port}")
        with pytest.raises(PermanentStoreError, match=refused):
            await client.list_jobs()
    finally:
        await client.close()
    async with storage_host(tmp_path / "s") as host:
        client = HttpStore(host.url, SENDER)
        assert await client.list_jobs() == []
    try:
        with pytest.raises(TransientStoreError, match=r"nothing listens on 127\.0\.0\.1:"):
            await client.list_jobs()  # the same host, gone
    finally:
        await client.close()


class StalledStore(MemoryStore):
    """Accepts an upload and never answers until released: a host that hangs."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        await self.release.wait()


class BrokenStore(MemoryStore):
    async def put_object(self, job: str, name: str, data: bytes) -> None:
        raise TransientStoreError("the backing store timed out")


async def test_a_host_that_stops_answering_times_out_as_transient() -> None:
    store = StalledStore()
    async with serving(make_app(store, allow_all())) as url:
        client = HttpStore(url, SENDER, timeout=0.3)
        try:
            with pytest.raises(TransientStoreError, match="did not answer"):
                await client.put_object(JOB, *random_object(10))
        finally:
            store.release.set()
            await client.close()


async def test_a_host_whose_own_store_fails_answers_503_which_is_transient() -> None:
    async with serving(make_app(BrokenStore(), allow_all())) as url:
        client = HttpStore(url, SENDER)
        try:
            with pytest.raises(TransientStoreError) as caught:
                await client.put_object(JOB, *random_object(10))
        finally:
            await client.close()

    assert "answered 503 store_unavailable: the backing store timed out" in caught.value.message


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("ftp://host", {}, "is not http"),
        ("https://user:pw@host", {}, "holds no credentials"),
        ("http://host", {"ca_file": "ca.pem"}, "not https"),
        ("https://host", {"pin_sha256": "abc"}, "not a SHA-256"),
    ],
    ids=["scheme", "credentials", "tls-on-http", "bad-pin"],
)
def test_a_bad_store_url_or_tls_option_is_a_config_error(
    url: str, options: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        HttpStore(url, SENDER, **options)  # type: ignore[arg-type]


async def test_a_url_with_a_path_prefix_signs_the_path_it_sends(tmp_path: Path) -> None:
    """Behind a proxy that forwards /transferd/… unchanged, the signed target is the full path."""
    async with storage_host(tmp_path / "s") as host:
        client = HttpStore(host.url + "/", SENDER)
        try:
            name, data = random_object(10)
            await client.put_object(JOB, name, data)
            assert client.description == host.url
            assert await client.list_jobs() == [JOB]
        finally:
            await client.close()


class CuttingProxy:
    """A TCP proxy to the host that cuts its first ``cuts`` connections as the host starts to
    answer: the request was handled, the answer is lost on the way back."""

    def __init__(self, port: int, *, cuts: int) -> None:
        self.port, self.cuts = port, cuts
        self.connections = 0

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        cut = self.connections <= self.cuts
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, cut: bool) -> None:
            while data := await src.read(65536):
                if cut:  # the answer never arrives: the connection just ends (FIN)
                    for w in (writer, up_writer):
                        w.close()
                    return
                dst.write(data)
                await dst.drain()
            dst.close()

        with contextlib.suppress(ConnectionError):
            await asyncio.gather(
                pipe(reader, up_writer, cut=False), pipe(up_reader, writer, cut=cut)
            )


async def test_a_lost_answer_is_retried_once_with_a_fresh_signature(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp would resend the same signed request on a new connection, which the host must
    refuse as a replay; the client leaves retrying to RetryingStore, which signs afresh."""
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with storage_host(tmp_path / "s") as host:
        proxy = CuttingProxy(int(host.host.rsplit(":", 1)[1]), cuts=1)
        async with proxy as url:
            store = RetryingStore(HttpStore(url, SENDER), sleep=sleep)
            with caplog.at_level(logging.INFO, "transferd.serve"):
                try:
                    assert await store.list_manifests(JOB) == []
                finally:
                    await store.close()

    handled = [r.getMessage() for r in caplog.records if r.name == "transferd.serve"]
    assert len(sleeps) == 1
    assert [line.split()[2] for line in handled] == ["404", "404"]  # no 401 replayed between
