"""The storage host under hostile load, as a real ``transferd serve`` on 127.0.0.1.

Each test starts the host with its limits set low enough that the case shows in seconds, attacks
it as protocol/THREATS.md (section 3.12) says an attacker may, and checks that genuine work goes
on, that the host gives back what the attack made it hold, and its peak memory (VmHWM).
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.host.hostile import (
    MIB,
    flood,
    peak_rss_mib,
    raw_put_head,
    read_until_closed,
    source_tree,
)
from tests.host.test_serve import ALLOW, put_and_get, serve
from tests.integration.harness import make_keys, send_args
from tests.stores.backends import SENDER, random_object
from transferd.core.constants import PACK_MAX_SIZE
from transferd.core.keys import SenderSecretKey
from transferd.stores.http import HttpStore
from transferd.stores.retry import RetryingStore

FLOOD_PEAK_MIB = 120
"""The host's peak memory under the flood: its own ~45 MiB idle, the send's uploads (4 x 16 MiB
packs streamed to disk, a MiB or two each), and nothing per stranger's request."""


@pytest.mark.slow
def test_a_flood_of_ungranted_keys_and_a_reader_over_its_rate_leave_a_send_unharmed(
    tmp_path: Path,
) -> None:
    keys = make_keys(tmp_path / "keys")
    reader = SenderSecretKey(bytes([6] * 32))
    source = source_tree(tmp_path / "src", 48)
    with serve(tmp_path, "--store", "st", "--listen", "127.0.0.1:0",
               "--allow", f"snds-*={keys.sender}",
               "--allow-reader", f"snds-*={reader.public().to_text()}",
               "--key-rate", "20", "--key-burst", "20") as host:  # fmt: skip
        done = asyncio.Event()
        results: dict[str, dict[int, int]] = {}

        async def attack() -> None:
            strangers = asyncio.create_task(flood(host.url, until=done, connections=6))
            runaway = asyncio.create_task(
                flood(host.url, until=done, keys=[reader], connections=2, at_least=3)
            )
            results["strangers"], results["reader"] = await strangers, await runaway

        loop = asyncio.new_event_loop()
        attacker = threading.Thread(target=loop.run_until_complete, args=(attack(),))
        attacker.start()
        try:
            sent = subprocess.run(
                send_args(source, host.url, "snds-dcir", keys, tmp_path / "state",
                          "--pack-size", "4M"),
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
        finally:
            loop.call_soon_threadsafe(done.set)
            attacker.join(60)
            loop.close()
        peak = peak_rss_mib(host.proc.pid)
        assert host.stop() == 0
        log = host.log()

    assert sent.returncode == 0, sent.stderr + log
    strangers, runaway = results["strangers"], results["reader"]
    strangers.pop(-1)
    seconds = runaway.pop(-1)
    assert set(strangers) == {403}, strangers  # refused, all of them, before being remembered
    assert strangers[403] > 100
    # the granted reader over its 20 requests a second (bursts of 20): held to them
    assert runaway.get(429, 0) > 0, runaway
    assert runaway.get(200, 0) <= 20 + 20 * (seconds + 1), runaway
    assert peak < FLOOD_PEAK_MIB, f"peak {peak:.0f} MiB"
    refusals = [line for line in log.splitlines() if " 403 " in line or " 429 " in line]
    assert len(refusals) < 40, f"{len(refusals)} refusal lines for {strangers[403]} refusals"
    assert "more requests (forbidden)" in log  # summed up, once per interval
    print(f"flood: {strangers[403]} refused, reader {runaway}, host peak {peak:.1f} MiB")


def partial_uploads(store: Path) -> list[Path]:
    return sorted(p for p in store.glob("jobs/*/tmp/*") if p.is_file())


@pytest.mark.slow
def test_a_receiver_killed_mid_upload_and_restarted_sweeps_its_partial_upload_while_running(
    tmp_path: Path,
) -> None:
    name, data = random_object(3 * MIB)
    target = f"/v1/jobs/snds-dcir/objects/{name}"
    limits = ("--partial-max-age", "4", "--sweep-interval", "0.5")
    args = ("--store", "st", "--listen", "127.0.0.1:0", "--allow", ALLOW, *limits)

    async def half_an_upload(url: str) -> asyncio.StreamWriter:
        port = int(url.rsplit(":", 1)[1])
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(await raw_put_head(url, target, len(data), name))
        for start in range(0, 2 * MIB, 64 * 1024):  # as a link brings it, a piece at a time
            writer.write(data[start : start + 64 * 1024])
            await writer.drain()
            await asyncio.sleep(0.01)
        return writer

    async def main() -> None:
        with serve(tmp_path, *args) as first:
            writer = await half_an_upload(first.url)
            for _ in range(200):  # the host writes as the body arrives: a MiB at a time
                if any(p.stat().st_size >= MIB for p in partial_uploads(tmp_path / "st")):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the host wrote no MiB of the upload")
            first.proc.kill()  # SIGKILL, mid-upload: nothing can clean up
            first.proc.wait(10)
            writer.close()
        left = partial_uploads(tmp_path / "st")
        assert len(left) == 1
        size = left[0].stat().st_size
        with serve(tmp_path, *args) as second:  # restarted at once
            assert partial_uploads(tmp_path / "st") == left  # younger than the bound: kept
            for _ in range(300):
                if not partial_uploads(tmp_path / "st"):
                    break
                await asyncio.sleep(0.05)
            assert partial_uploads(tmp_path / "st") == []  # swept while running, no restart
            assert second.stop() == 0
            assert f"removed 1 partial uploads ({size / MIB:.1f} MiB) unwritten for over 4 s" in (
                second.log()
            )

    asyncio.run(main())


SLOW = ("--header-timeout", "1", "--idle-timeout", "2", "--body-timeout", "1",
        "--max-connections-per-peer", "40")  # fmt: skip


@pytest.mark.slow
def test_slowloris_stalled_uploads_and_too_many_connections_are_closed(tmp_path: Path) -> None:
    async def drip(port: int) -> tuple[float, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()

        async def dripping() -> None:
            for byte in b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.1)

        task = asyncio.create_task(dripping())
        try:
            answer = await read_until_closed(reader, 10)
        finally:
            task.cancel()
            writer.close()
        return time.monotonic() - started, answer

    async def stall(url: str) -> tuple[float, bytes]:
        name, _ = random_object(10)
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        target = f"/v1/jobs/snds-dcir/objects/{name}"
        writer.write(await raw_put_head(url, target, PACK_MAX_SIZE, name) + bytes(256 * 1024))
        started = time.monotonic()
        try:
            return time.monotonic() - started, await read_until_closed(reader, 10)
        finally:
            writer.close()

    async def main() -> None:
        with serve(tmp_path, "--store", "st", "--listen", "127.0.0.1:0", "--allow", ALLOW,
                   *SLOW) as host:  # fmt: skip
            port = int(host.url.rsplit(":", 1)[1])
            dripped = await asyncio.gather(*(drip(port) for _ in range(30)))
            stalled = await asyncio.gather(*(stall(host.url) for _ in range(10)))
            idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(45)]
            answers = await asyncio.gather(*(read_until_closed(r, 10) for r, _ in idle))
            for _, writer in idle:
                writer.close()
            left = partial_uploads(tmp_path / "st")
            assert len(await put_and_get(host.url)) == 10_000  # and a genuine client is served
            assert host.stop() == 0

        for seconds, answer in dripped:  # 1 s for the headers, counted from the first byte
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout"), answer
            assert b'"header_timeout"' in answer
            assert 0.9 < seconds < 4
        for seconds, answer in stalled:  # 1 s without a byte of the body
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert b'"body_timeout"' in answer
            assert seconds < 5
        assert left == []  # a dropped upload leaves no partial file
        refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        assert len(refused) == 5  # over the 40 a peer may hold
        assert all(b"too_many_connections" in a and b"Retry-After: 1" in a for a in refused)
        assert sum(1 for a in answers if a == b"") == 40  # idle: closed after 2 s, silently

    asyncio.run(main())


CONCURRENCY_PEAK_MIB = 100
"""The host's peak memory with 24 uploads of 8 MiB at once and 3 slots: its ~45 MiB idle, and per
upload received a MiB or two of parts on their way to disk; the 21 waiting hold nothing but
their sockets' buffers (their bodies are not read)."""


@pytest.mark.slow
def test_uploads_over_the_cap_wait_or_come_back_and_all_complete(tmp_path: Path) -> None:
    objects = [random_object(8 * MIB) for _ in range(24)]

    async def upload_all(url: str) -> list[bytes]:
        store = RetryingStore(HttpStore(url, SENDER), attempts=8)
        try:
            await asyncio.gather(*(store.put_object("snds-dcir", n, d) for n, d in objects))
            return [await store.get_object("snds-dcir", n) for n, _ in objects[:2]]
        finally:
            await store.close()

    with serve(tmp_path, "--store", "st", "--listen", "127.0.0.1:0", "--allow", ALLOW,
               "--max-uploads", "3", "--upload-wait", "0.2") as host:  # fmt: skip
        read_back = asyncio.run(upload_all(host.url))
        peak = peak_rss_mib(host.proc.pid)
        assert host.stop() == 0
        log = host.log()

    stored = sorted(p.name for p in (tmp_path / "st" / "jobs" / "snds-dcir").rglob("objects/*/*"))
    assert stored == sorted(n for n, _ in objects)
    assert read_back == [d for _, d in objects[:2]]
    assert peak < CONCURRENCY_PEAK_MIB, f"peak {peak:.0f} MiB"
    print(f"concurrency: {log.count(' 503 ')} answered busy, host peak {peak:.1f} MiB")
