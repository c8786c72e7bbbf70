"""What the hostile-load tests share: a real ``transferd serve``, its peak memory, and clients
that send what no honest sender would (fresh keys nobody granted, dripped headers, stalls)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import aiohttp

from tests.host.signing import signed_headers
from transferd.core.keys import SenderSecretKey

MIB = 1 << 20


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def source_tree(root: Path, mib: int, seed: int = 7) -> Path:
    """``mib`` MiB of incompressible files to send, in 1 MiB files."""
    root.mkdir(parents=True)
    rng = random.Random(seed)
    for i in range(mib):
        (root / f"part-{i:03}.bin").write_bytes(rng.randbytes(MIB))
    return root


async def flood(
    url: str,
    *,
    until: asyncio.Event,
    keys: list[SenderSecretKey] | None = None,
    connections: int = 8,
    limit: int = 20_000,
    seconds: float = 60.0,
    at_least: float = 0.0,
) -> dict[int, int]:
    """Correctly signed ``GET /v1/jobs`` from ``keys`` in turn (default: a fresh key for every
    request, as a stranger's script would make them), on ``connections`` connections, until
    ``until`` is set (but for ``at_least`` seconds), ``limit`` requests are sent or ``seconds``
    pass. Counts answers by status; 0 counts requests the host closed the connection on, and -1
    the seconds the flood lasted."""
    host = url.split("://", 1)[1]
    statuses: dict[int, int] = {}
    sent = 0
    started = time.monotonic()
    deadline = started + seconds
    connector = aiohttp.TCPConnector(limit=connections)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal sent

        def going() -> bool:
            now = time.monotonic()
            return (not until.is_set() or now - started < at_least) and now < deadline

        while going() and sent < limit:
            sent += 1
            key = keys[sent % len(keys)] if keys else SenderSecretKey(os.urandom(32))
            # timestamps at the edge of the window, as the attack that filled the memory used
            ts = int(time.time()) + 299
            try:
                async with session.get(
                    url + "/v1/jobs",
                    headers=signed_headers("GET", "/v1/jobs", host, key=key, ts=ts),
                ) as answer:
                    await answer.read()
                    statuses[answer.status] = statuses.get(answer.status, 0) + 1
            except aiohttp.ClientError:
                statuses[0] = statuses.get(0, 0) + 1

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    statuses[-1] = round(time.monotonic() - started)
    return statuses


async def raw_put_head(url: str, target: str, declared: int, name: str) -> bytes:
    """The head of a correctly signed upload whose body declares ``declared`` bytes."""
    host = url.split("://", 1)[1]
    lines = [f"PUT {target} HTTP/1.1", f"Content-Length: {declared}"]
    lines += [f"{k}: {v}" for k, v in signed_headers("PUT", target, host, digest=name).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_until_closed(reader: asyncio.StreamReader, within: float) -> bytes:
    """What the host sends before it closes the connection; raises TimeoutError if it keeps it
    open longer than ``within`` seconds."""
    got = b""
    async with asyncio.timeout(within):
        while True:
            try:
                part = await reader.read(65536)
            except ConnectionError:
                return got
            if not part:
                return got
            got += part
