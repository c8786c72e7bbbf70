"""``transferd serve`` as an operator runs it: a real process, its output, its signals.

Each test starts ``python -m transferd serve`` from this checkout, waits for its ``listening on``
line, talks to it over 127.0.0.1 and stops it with SIGTERM, as systemd would.
"""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.host.signing import signed_headers
from tests.stores.backends import SENDER, SMALL_FS_SIZE, random_object
from transferd.errors import ClockSkewError, StoreFullError
from transferd.stores.http import HttpStore
from transferd.stores.local import LocalStore

REPO = Path(__file__).resolve().parents[2]
JOB = "snds-dcir"
ALLOW = f"snds-*={SENDER.public().to_text()}"


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return {**clean, "PYTHONPATH": str(REPO), "PYTHONUTF8": "1"}


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    stderr: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log(self) -> str:
        return self.stderr.read_text()


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


@contextmanager
def serve(
    tmp_path: Path,
    *args: str,
    prefix: tuple[str, ...] = (),
    env_extra: dict[str, str] | None = None,
) -> Iterator[Served]:
    stderr = tmp_path / f"serve-{time.monotonic_ns()}.err"
    command = [*prefix, sys.executable, "-m", "transferd", "serve", *args]
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**env(), **(env_extra or {})},
            cwd=tmp_path,
        )
    try:
        line = read_line(proc, 30)
        assert line.startswith("listening on "), (
            f"no listening line: {line!r}\n{stderr.read_text()}"
        )
        yield Served(proc, line.split()[-1], stderr)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def run_serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "transferd", "serve", *args],
        capture_output=True,
        text=True,
        env=env(),
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


async def put_and_get(url: str, size: int = 10_000) -> bytes:
    client = HttpStore(url, SENDER)
    try:
        name, data = random_object(size)
        await client.put_object(JOB, name, data)
        return await client.get_object(JOB, name)
    finally:
        await client.close()


def test_serve_announces_its_port_logs_requests_and_stops_on_sigterm(tmp_path: Path) -> None:
    with serve(tmp_path, "--store", "st", "--listen", "127.0.0.1:0", "--allow", ALLOW) as served:
        assert served.url.startswith("http://127.0.0.1:")
        assert served.port > 0
        assert len(asyncio.run(put_and_get(served.url))) == 10_000

        assert served.stop() == 0
        log = served.log()

    assert f"transferd: info: PUT /v1/jobs/{JOB}/objects/" in log
    assert " 201 in=10000 out=" in log
    assert f"key={SENDER.public().to_text()[:16]}…" in log
    assert log.rstrip().endswith("transferd: info: stopped")
    assert (
        len([e for e in (tmp_path / "st" / "jobs" / JOB / "objects").rglob("*") if e.is_file()])
        == 1
    )


def test_sigterm_lets_an_upload_in_flight_finish_and_be_stored(tmp_path: Path) -> None:
    name, data = random_object(2_000_000)
    target = f"/v1/jobs/{JOB}/objects/{name}"
    with serve(tmp_path, "--store", "st", "--listen", "127.0.0.1:0", "--allow", ALLOW) as served:
        host = f"127.0.0.1:{served.port}"
        # Expect: 100-continue makes the server say when it has taken the request in hand
        head = [f"PUT {target} HTTP/1.1", f"Content-Length: {len(data)}", "Expect: 100-continue"]
        head += [f"{k}: {v}" for k, v in signed_headers("PUT", target, host, data).items()]
        with socket.create_connection(("127.0.0.1", served.port), timeout=30) as conn:
            conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            assert conn.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
            conn.sendall(data[:1_000_000])
            served.proc.send_signal(signal.SIGTERM)
            wait_until_refused(served.port)  # it stopped listening, with our request in flight
            conn.sendall(data[1_000_000:])
            answer = conn.recv(65536)

        assert answer.startswith(b"HTTP/1.1 201"), answer
        assert served.proc.wait(30) == 0

    stored = asyncio.run(LocalStore(tmp_path / "st").get_object(JOB, name))
    assert stored == data


def wait_until_refused(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return
        time.sleep(0.02)
    raise AssertionError("the server kept listening after SIGTERM")


def test_serve_reads_a_config_file_with_paths_relative_to_it(tmp_path: Path) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    (conf_dir / "transferd.toml").write_text(
        "[serve]\n"
        'store = "../data"\n'
        'listen = "127.0.0.1:0"\n'
        "[serve.senders]\n"
        f'"snds-*" = ["{SENDER.public().to_text()}"]\n'
    )
    with serve(tmp_path, "--config", "etc/transferd.toml") as served:
        assert len(asyncio.run(put_and_get(served.url))) == 10_000
        assert served.stop() == 0

    assert (tmp_path / "data" / "jobs" / JOB).is_dir()


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (["--store", "st"], None, "no key is allowed to use this host"),
        (["--store", "st", "--allow", f"snds-*={SENDER.to_text()}"], None, "a sender secret key"),
        (["--store", "st", "--allow", ALLOW, "--listen", "nowhere"], None, "is not HOST:PORT"),
        (["--store", "st", "--allow", ALLOW, "--tls-cert", "c.pem"], None, "both a certificate"),
        (["--config", "c.toml"], "[serve]\nstores = 'x'\n", "unknown setting 'stores'"),
        (["--config", "c.toml"], "[serve\n", "is not valid TOML"),
        (["--allow", ALLOW], None, "no store directory or bucket"),
    ],
    ids=["no-grant", "secret-key", "listen", "half-tls", "unknown-setting", "toml", "no-store"],
)
def test_a_bad_setting_exits_2_naming_it(
    tmp_path: Path, args: list[str], config: str | None, message: str
) -> None:
    if config is not None:
        (tmp_path / "c.toml").write_text(config)

    result = run_serve(tmp_path, *args)

    assert result.returncode == 2
    assert result.stderr.startswith("transferd: error: ")
    assert message in result.stderr
    assert result.stdout == ""


def test_a_tls_key_others_can_read_is_refused(tmp_path: Path) -> None:
    (tmp_path / "host.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "host.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    (tmp_path / "host.key").chmod(0o644)

    result = run_serve(
        tmp_path,
        "--store",
        "st",
        "--allow",
        ALLOW,
        "--tls-cert",
        "host.crt",
        "--tls-key",
        "host.key",
    )

    assert result.returncode == 2
    assert "the TLS key host.key can be read by group or others" in result.stderr
    assert "transferd: hint: chmod 600 host.key" in result.stderr


def test_a_port_in_use_exits_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = run_serve(
            tmp_path, "--store", "st", "--allow", ALLOW, "--listen", f"127.0.0.1:{port}"
        )

    assert result.returncode == 2
    assert f"transferd: error: cannot listen on 127.0.0.1:{port}: address already in use" in (
        result.stderr
    )


# libfaketime itself rather than the faketime command, which forks: SIGTERM would stop the
# command and leave the server running.
LIBFAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))), None)


def test_a_server_whose_clock_is_400_s_behind_refuses_with_clock_skew(tmp_path: Path) -> None:
    assert LIBFAKETIME is not None, "faketime is not installed: run scripts/setup"
    fake_clock = {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME": "-400s",
        "DONT_FAKE_MONOTONIC": "1",  # the event loop keeps real time
    }
    with serve(
        tmp_path, "--store", "st", "--listen", "127.0.0.1:0", "--allow", ALLOW, env_extra=fake_clock
    ) as served:
        with pytest.raises(ClockSkewError) as caught:
            asyncio.run(put_and_get(served.url))
        assert served.stop() == 0

    assert "answered 401 clock_skew: clock skew of" in caught.value.message
    # the server's clock is behind: the request is ahead of it, a negative skew
    assert caught.value.skew_seconds is not None
    assert -401 <= caught.value.skew_seconds <= -398
    assert caught.value.limit_seconds == 300
    assert "(the request is ahead of the server's clock)" in caught.value.message


def can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def test_serve_on_a_full_disk_answers_507_and_recovers_in_a_user_namespace(tmp_path: Path) -> None:
    """The unprivileged route to a small disk: the server mounts its own tmpfs (ENVIRONMENT.md)."""
    assert can_unshare(), "user namespaces are not available: this test needs unshare --user"
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    script = 'mount -t tmpfs -o size="$1" tmpfs "$2" && shift 2 && exec "$@"'
    unshare = ("unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh")
    prefix = (*unshare, str(SMALL_FS_SIZE), str(mount_point))
    third = SMALL_FS_SIZE * 3 // 8
    objects = [random_object(third) for _ in range(3)]

    async def fill(url: str) -> StoreFullError:
        client = HttpStore(url, SENDER)
        try:
            for name, data in objects[:2]:
                await client.put_object(JOB, name, data)
            with pytest.raises(StoreFullError) as caught:
                await client.put_object(JOB, *objects[2])
            await client.delete_object(JOB, objects[0][0])
            await client.put_object(JOB, *objects[2])  # the space freed, the same put succeeds
            assert await client.get_object(JOB, objects[2][0]) == objects[2][1]
            return caught.value
        finally:
            await client.close()

    store_dir = mount_point / "store"
    with serve(
        tmp_path, "--store", str(store_dir), "--listen", "127.0.0.1:0", "--allow", ALLOW,
        prefix=prefix,
    ) as served:  # fmt: skip
        full = asyncio.run(fill(served.url))
        # the server's view of the tmpfs, through its mount namespace
        seen = Path(f"/proc/{served.proc.pid}/root") / str(store_dir).lstrip("/")
        leftovers = list((seen / "jobs" / JOB / "tmp").iterdir())
        stored = sorted(p.name for p in (seen / "jobs" / JOB / "objects").rglob("*") if p.is_file())
        assert served.stop() == 0

    assert "answered 507 out_of_space: the store at" in full.message
    assert leftovers == []
    assert stored == sorted([objects[1][0], objects[2][0]])
    assert not any(mount_point.iterdir())  # the tmpfs was the server's alone
