"""The storage host's API on a real socket: who may do what, replays, clocks, bodies, manifests.

Requests are built and signed by hand (signing.py) so that each test can send exactly the fault
it is about; a response is checked for its status, its error code and, where it matters, that
nothing reached the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from pathlib import Path

import aiohttp
import pytest

from tests.host.signing import Host, signed_headers, storage_host
from tests.stores.backends import SENDER, random_object, signed_manifest
from transferd.core.constants import PACK_MAX_SIZE
from transferd.core.keys import SenderSecretKey
from transferd.host.auth import Authorizer, NonceCache
from transferd.host.build import OpenHost, serve
from transferd.host.context import IN_FLIGHT
from transferd.host.server import make_app
from transferd.stores.base import HAVE_BATCH
from transferd.stores.local import LocalStore
from transferd.stores.memory import MemoryStore

JOB = "snds-dcir"
UNKNOWN = SenderSecretKey(bytes([1] * 32))
OTHER = SenderSecretKey(bytes([9] * 32))
READER = SenderSecretKey(bytes([5] * 32))


def authorizer() -> Authorizer:
    return Authorizer(
        writers=[("snds-*", SENDER.public()), ("other-*", OTHER.public())],
        readers=[("snds-*", READER.public())],
    )


async def put(host: Host, data: bytes, job: str = JOB, **sign: object) -> int:
    name = hashlib.sha256(data).hexdigest()
    answer = await host.send("PUT", f"/v1/jobs/{job}/objects/{name}", data, **sign)  # type: ignore[arg-type]
    return answer.status


async def test_health_needs_no_signature(tmp_path: Path) -> None:
    async with storage_host(tmp_path / "s", authorizer()) as host:
        answer = await host.send("GET", "/v1/health", headers={})

    assert (answer.status, answer.json) == (200, {"status": "ok"})


async def test_an_unsigned_request_is_refused_with_401(tmp_path: Path) -> None:
    async with storage_host(tmp_path / "s", authorizer()) as host:
        answer = await host.send("GET", f"/v1/jobs/{JOB}/manifests", headers={})

    assert answer.status == 401
    assert answer.json["code"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"] == "TD1"


@pytest.mark.parametrize(
    ("key", "job"),
    [(OTHER, JOB), (UNKNOWN, JOB), (READER, JOB), (SENDER, "other-x")],
    ids=["sender-of-other-jobs", "unknown-key", "reader", "outside-pattern"],
)
async def test_a_key_not_allowed_to_write_the_job_is_refused_with_403(
    tmp_path: Path, key: SenderSecretKey, job: str
) -> None:
    name, data = random_object(100)
    async with storage_host(tmp_path / "s", authorizer()) as host:
        answer = await host.send("PUT", f"/v1/jobs/{job}/objects/{name}", data, key=key)

        assert answer.status == 403
        assert answer.json["code"] == "forbidden"
        refusal = f"may not write job {job}" if key != UNKNOWN else "has no grant on this host"
        assert refusal in answer.json["error"]
        assert await host.store.list_jobs() == []


async def test_a_reader_reads_but_may_not_delete(tmp_path: Path) -> None:
    name, data = random_object(100)
    async with storage_host(tmp_path / "s", authorizer()) as host:
        assert await put(host, data) == 201

        got = await host.send("GET", f"/v1/jobs/{JOB}/objects/{name}", key=READER)
        deleted = await host.send("DELETE", f"/v1/jobs/{JOB}/objects/{name}", key=READER)

        assert (got.status, got.body) == (200, data)
        assert (deleted.status, deleted.json["code"]) == (403, "forbidden")
        assert await host.store.has_objects(JOB, [name]) == {name}


async def test_reads_of_an_unknown_job_are_404_unknown_job(tmp_path: Path) -> None:
    name, data = random_object(10)
    async with storage_host(tmp_path / "s", authorizer()) as host:
        for target in (
            "/v1/jobs/snds-none/manifests",
            "/v1/jobs/snds-none/manifests/1",
            "/v1/jobs/snds-none/objects",
            f"/v1/jobs/snds-none/objects/{name}",
        ):
            answer = await host.send("GET", target)
            assert (answer.status, answer.json["code"]) == (404, "unknown_job"), target
        await put(host, data)
        missing = await host.send("GET", f"/v1/jobs/{JOB}/objects/{'0' * 64}")
        assert (missing.status, missing.json["code"]) == (404, "not_found")


async def test_the_exact_same_signed_request_twice_is_refused_as_replayed(tmp_path: Path) -> None:
    name, data = random_object(1000)
    async with storage_host(tmp_path / "s", authorizer()) as host:
        target = f"/v1/jobs/{JOB}/objects/{name}"
        headers = signed_headers("PUT", target, host.host, data)

        first = await host.send("PUT", target, data, headers=headers)
        second = await host.send("PUT", target, data, headers=headers)

    assert first.status == 201
    assert second.status == 401
    assert second.json["code"] == "replayed"
    assert second.json["error"].startswith("replayed request")


@pytest.mark.parametrize("offset", [-400, 400])
async def test_a_request_signed_outside_the_clock_window_is_refused(
    tmp_path: Path, offset: int
) -> None:
    name, data = random_object(10)
    async with storage_host(tmp_path / "s", authorizer(), clock=lambda: 1_800_000_000.0) as host:
        answer = await host.send(
            "PUT", f"/v1/jobs/{JOB}/objects/{name}", data, ts=1_800_000_000 + offset
        )
        ok = await host.send(
            "PUT", f"/v1/jobs/{JOB}/objects/{name}", data, ts=1_800_000_000 + offset // 2
        )

    assert answer.status == 401
    assert answer.json["code"] == "clock_skew"
    assert answer.json["error"].startswith("clock skew of 400 s exceeds the allowed 300 s")
    assert ok.status == 201


async def test_a_body_that_does_not_match_its_signed_digest_stores_nothing(tmp_path: Path) -> None:
    name, data = random_object(10_000)
    corrupt = data[:5000] + bytes([data[5000] ^ 1]) + data[5001:]
    async with storage_host(tmp_path / "s", authorizer()) as host:
        target = f"/v1/jobs/{JOB}/objects/{name}"
        headers = signed_headers("PUT", target, host.host, data)  # signed over the right bytes

        answer = await host.send("PUT", target, corrupt, headers=headers)

        assert (answer.status, answer.json["code"]) == (400, "corrupt_body")
        assert await host.store.has_objects(JOB, [name]) == set()
        assert host.temp_files() == []


async def test_an_object_whose_name_is_not_its_digest_is_refused(tmp_path: Path) -> None:
    name, _ = random_object(10)
    _, data = random_object(10)
    async with storage_host(tmp_path / "s", authorizer()) as host:
        answer = await host.send("PUT", f"/v1/jobs/{JOB}/objects/{name}", data)

        assert (answer.status, answer.json["code"]) == (400, "corrupt_body")
        assert await host.store.list_jobs() == []


async def raw_request(
    host: Host, head: bytes, body: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a connection and send ``head`` and ``body`` as they are."""
    port = int(host.host.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + body)
    await writer.drain()
    return reader, writer


def request_head(host: Host, method: str, target: str, length: int, digest: str) -> bytes:
    headers = signed_headers(method, target, host.host, digest=digest)
    lines = [f"{method} {target} HTTP/1.1", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_a_truncated_upload_stores_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name, data = random_object(1_000_000)
    async with storage_host(tmp_path / "s", authorizer()) as host:
        target = f"/v1/jobs/{JOB}/objects/{name}"
        with caplog.at_level(logging.INFO, "transferd.serve"):
            head = request_head(host, "PUT", target, len(data), name)
            _, writer = await raw_request(host, head, data[: len(data) // 2])
            writer.close()  # half the body, then gone: the client crashed mid-upload
            # the server logs the request once its handler is done with it
            for _ in range(500):
                if any(target in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(0.01)
        logged = [r.getMessage() for r in caplog.records if target in r.getMessage()]

        assert logged
        assert f"PUT {target} 400 in=500000 " in logged[0]
        assert await host.store.has_objects(JOB, [name]) == set()
        assert [e async for e in host.store.list_objects(JOB)] == []
        assert host.temp_files() == []
        assert await put(host, data) == 201  # the retry of the whole upload goes through


async def test_a_body_over_the_pack_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    async with storage_host(tmp_path / "s", authorizer()) as host:
        target = f"/v1/jobs/{JOB}/objects/{'a' * 64}"
        reader, writer = await raw_request(
            host, request_head(host, "PUT", target, PACK_MAX_SIZE + 1, "a" * 64), b""
        )
        status_line = await reader.readline()  # answered before any byte of the body is sent
        writer.close()
        await writer.wait_closed()

    assert status_line.startswith(b"HTTP/1.1 413")


async def test_a_manifest_is_never_overwritten(tmp_path: Path) -> None:
    first = signed_manifest(JOB, 1)
    second = signed_manifest(JOB, 1, created="2026-11-22T21:00:09Z")
    async with storage_host(tmp_path / "s", authorizer()) as host:
        stored = await host.send("PUT", f"/v1/jobs/{JOB}/manifests/1", first)
        refused = await host.send("PUT", f"/v1/jobs/{JOB}/manifests/1", second)
        listed = await host.send("GET", f"/v1/jobs/{JOB}/manifests")
        read = await host.send("GET", f"/v1/jobs/{JOB}/manifests/1")

    assert stored.status == 201
    assert (refused.status, refused.json["code"]) == (409, "manifest_exists")
    assert listed.json == {"manifests": [1]}
    assert read.body == first


@pytest.mark.parametrize(
    ("manifest", "target", "status", "message"),
    [
        (signed_manifest(JOB, 1, OTHER), f"/v1/jobs/{JOB}/manifests/1", 403, "may not write"),
        (signed_manifest("snds-x", 1), f"/v1/jobs/{JOB}/manifests/1", 400, "for job snds-x"),
        (signed_manifest(JOB, 2), f"/v1/jobs/{JOB}/manifests/1", 400, "sequence 2"),
        (b"not a manifest\n", f"/v1/jobs/{JOB}/manifests/1", 400, "manifest refused"),
        (
            signed_manifest(JOB, 1).replace(b'"sequence":1', b'"sequence":1 '),
            f"/v1/jobs/{JOB}/manifests/1",
            400,
            "manifest refused",
        ),
    ],
    ids=["signer-not-allowed", "other-job", "other-sequence", "garbage", "altered"],
)
async def test_a_manifest_that_does_not_belong_here_is_refused(
    tmp_path: Path, manifest: bytes, target: str, status: int, message: str
) -> None:
    async with storage_host(tmp_path / "s", authorizer()) as host:
        answer = await host.send("PUT", target, manifest)

        assert answer.status == status
        assert message in answer.json["error"]
        assert await host.store.list_jobs() == []


async def test_ranges_are_served_with_206_and_416_past_the_end(tmp_path: Path) -> None:
    name, data = random_object(1000)
    async with storage_host(tmp_path / "s", authorizer()) as host:
        await put(host, data)
        target = f"/v1/jobs/{JOB}/objects/{name}"
        partial = await host.send("GET", target, headers=None)
        signed = signed_headers("GET", target, host.host)
        ranged = await host.send("GET", target, headers={**signed, "Range": "bytes=10-19"})
        signed = signed_headers("GET", target, host.host)
        past = await host.send("GET", target, headers={**signed, "Range": "bytes=1000-"})

    assert (partial.status, partial.body) == (200, data)
    assert (ranged.status, ranged.body) == (206, data[10:20])
    assert ranged.headers["Content-Range"] == "bytes 10-19/*"
    assert past.status == 416


async def test_listing_pages_by_name(tmp_path: Path) -> None:
    objects = dict(random_object(n + 1) for n in range(5))
    async with storage_host(tmp_path / "s", authorizer()) as host:
        for data in objects.values():
            await put(host, data)
        first = await host.send("GET", f"/v1/jobs/{JOB}/objects?limit=3")
        after = first.json["next"]
        rest = await host.send("GET", f"/v1/jobs/{JOB}/objects?limit=3&after={after}")
        bad = await host.send("GET", f"/v1/jobs/{JOB}/objects?limit=0")

    names = sorted(objects)
    assert [o["name"] for o in first.json["objects"]] == names[:3]
    assert after == names[2]
    assert [o["name"] for o in rest.json["objects"]] == names[3:]
    assert rest.json["next"] is None
    assert rest.json["objects"][0]["size"] == len(objects[names[3]])
    assert (bad.status, bad.json["code"]) == (400, "bad_request")


async def test_have_takes_at_most_one_batch_of_valid_names(tmp_path: Path) -> None:
    name, data = random_object(10)
    async with storage_host(tmp_path / "s", authorizer()) as host:
        await put(host, data)
        target = f"/v1/jobs/{JOB}/objects/have"
        held = await host.send("POST", target, f'["{name}", "{"1" * 64}"]'.encode())
        too_many = await host.send("POST", target, str(["0" * 64] * (HAVE_BATCH + 1)).encode())
        invalid = await host.send("POST", target, b'["../x"]')

    assert (held.status, held.json) == (200, [name])
    assert too_many.status == 400
    assert (invalid.status, invalid.json["code"]) == (400, "bad_request")


async def test_jobs_are_listed_to_those_who_may_read_them(tmp_path: Path) -> None:
    async with storage_host(tmp_path / "s", authorizer()) as host:
        await put(host, b"a")
        await put(host, b"b", job="other-job", key=OTHER)
        mine = await host.send("GET", "/v1/jobs")
        theirs = await host.send("GET", "/v1/jobs", key=OTHER)

    assert mine.json == {"jobs": [JOB]}
    assert theirs.json == {"jobs": ["other-job"]}


async def test_a_request_signed_for_another_host_is_refused(tmp_path: Path) -> None:
    name, data = random_object(10)
    target = f"/v1/jobs/{JOB}/objects/{name}"
    async with storage_host(tmp_path / "any", authorizer()) as host:
        moved = signed_headers("PUT", target, "store.example.org", data)
        moved["Host"] = host.host  # signed for one host, sent to another
        altered = await host.send("PUT", target, data, headers=moved)
    fixed = Authorizer(writers=[("*", SENDER.public())], hosts=["Store.example.org"])
    async with storage_host(tmp_path / "fixed", fixed) as host:
        by_address = await host.send("PUT", target, data)  # signed for 127.0.0.1:PORT
        by_name = signed_headers("PUT", target, "store.example.org", data)
        named = await host.send("PUT", target, data, headers=by_name)

    assert (altered.status, altered.json["code"]) == (401, "unauthorized")
    assert "does not verify" in altered.json["error"]
    assert by_address.status == 401
    assert "does not answer for host" in by_address.json["error"]
    assert named.status == 201


async def test_every_error_is_json_with_a_code(tmp_path: Path) -> None:
    async with storage_host(tmp_path / "s", authorizer()) as host:
        nowhere = await host.send("GET", "/v2/nothing", headers={})
        method = await host.send("PATCH", f"/v1/jobs/{JOB}/manifests")

    assert (nowhere.status, nowhere.json["code"]) == (404, "not_found")
    assert (method.status, method.json["code"]) == (405, "bad_request")


async def test_each_request_is_logged_on_one_line_without_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name, data = random_object(2048)
    async with storage_host(tmp_path / "s", authorizer()) as host:
        with caplog.at_level(logging.INFO, "transferd.serve"):
            await put(host, data)
            await host.send("GET", f"/v1/jobs/{JOB}/objects/{name}")

    lines = [r.getMessage() for r in caplog.records if r.name == "transferd.serve"]
    key_prefix = SENDER.public().to_text()[:16]
    assert lines[0].startswith(f"PUT /v1/jobs/{JOB}/objects/{name} 201 in=2048 out=")
    assert lines[0].endswith(f"key={key_prefix}…")
    assert lines[1].startswith(f"GET /v1/jobs/{JOB}/objects/{name} 200 in=0 out=2048 ")
    assert not any("TD1" in line or "sig=" in line for line in lines)


async def test_the_nonce_cache_forgets_what_the_clock_window_refuses_anyway(
    tmp_path: Path,
) -> None:
    now = [time.time()]
    nonces = NonceCache()
    async with storage_host(
        tmp_path / "s", authorizer(), clock=lambda: now[0], nonces=nonces
    ) as host:
        for i in range(5):
            await put(host, bytes([i]), ts=int(now[0]))
        assert len(nonces) == 5
        now[0] += 301

        assert await put(host, b"later", ts=int(now[0])) == 201
        assert len(nonces) == 1


class StalledStore(MemoryStore):
    """Holds every upload until released, so a stop can happen while one is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        self.entered.set()
        await self.release.wait()
        await super().put_object(job, name, data)


async def test_a_stopping_server_finishes_requests_in_flight_and_turns_new_ones_away(
    tmp_path: Path,
) -> None:
    store, stop, listening = StalledStore(), asyncio.Event(), asyncio.Event()
    urls: list[str] = []

    def on_listening(url: str) -> None:
        urls.append(url)
        listening.set()

    app = make_app(store, authorizer())
    server = asyncio.create_task(
        serve(OpenHost(app, None, store), ("127.0.0.1", 0), on_listening=on_listening, stop=stop)
    )
    await listening.wait()
    name, data = random_object(1000)
    async with aiohttp.ClientSession() as session:
        host = Host(urls[0], LocalStore(tmp_path / "unused"), session)  # serves `store`
        assert (await host.send("GET", f"/v1/jobs/{JOB}/manifests")).status == 404  # kept alive
        async with aiohttp.ClientSession() as other:
            upload = asyncio.create_task(
                Host(urls[0], host.store, other).send("PUT", f"/v1/jobs/{JOB}/objects/{name}", data)
            )
            await store.entered.wait()
            stop.set()
            for _ in range(500):  # serve() wakes up, marks itself stopping, closes its socket
                if app[IN_FLIGHT].stopping:
                    break
                await asyncio.sleep(0.01)

            turned_away = await host.send("GET", f"/v1/jobs/{JOB}/manifests")
            store.release.set()
            finished = await upload
        await server

    assert (turned_away.status, turned_away.json["code"]) == (503, "stopping")
    assert turned_away.headers["Connection"] == "close"
    assert finished.status == 201
    assert await store.get_object(JOB, name) == data
