"""Every expected failure says what happened, with its own exit code and no traceback.

One test per case, each running the real command as an operator does (a child process) against
the real thing that fails: a missing directory, a refused port, a full or read-only tmpfs, a
directory in the way, a state directory this user may not write (root without its
CAP_DAC_OVERRIDE), and a real HTTP server on loopback answering what no storage host would. Each
asserts the exact exit code, the exact message, and that no traceback was printed.
"""

from __future__ import annotations

import asyncio
import filecmp
import json
import os
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest
from aiohttp import web

from tests.cli.conftest import Result, Run
from tests.cli.privatefs import PrivateTmpfs

JOB = "claims"
AGAIN = "then run the same command again: nothing the host acknowledged is lost"


@pytest.fixture
def owner(run: Run) -> str:
    """The recipient's public key; owner.key and sender.key are in tmp_path."""
    created = run("keygen", "--kind", "recipient", "-o", "owner.key")
    assert created.code == 0, created.stderr
    assert run("keygen", "--kind", "sender", "-o", "sender.key").code == 0
    return created.stdout.strip()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "tables").mkdir(parents=True)
    (src / "tables" / "claims.csv").write_text(
        "id,act\n" + "".join(f"{i},A{i}\n" for i in range(999))
    )
    return src


def send(
    run: Run, tmp_path: Path, owner: str, source: Path | str, to: Path | str, state: Path,
    *extra: str, prefix: tuple[str, ...] = (),
) -> Result:  # fmt: skip
    return run(
        "send", str(source), "--to", str(to), "--job", JOB, "--sender-key",
        str(tmp_path / "sender.key"), "-r", owner, "--state", str(state), "--progress", "never",
        "--retries", "8", *extra, prefix=prefix,
    )  # fmt: skip


def errors_of(result: Result) -> list[str]:
    assert "Traceback" not in result.stdout + result.stderr
    return result.stderr.splitlines()


def json_error(result: Result) -> dict[str, object]:
    assert "Traceback" not in result.stdout + result.stderr
    error = json.loads(result.stderr.strip().splitlines()[-1])
    assert isinstance(error, dict)
    return error


def manifests_in(store: Path) -> list[str]:
    directory = store / "jobs" / JOB / "manifests"
    return sorted(os.listdir(directory)) if directory.is_dir() else []


# --- the source: nothing published, exit 8 (not 3, which says a manifest was stored) -------


def test_a_missing_source_directory_exits_8_and_publishes_nothing(
    run: Run, tmp_path: Path, owner: str
) -> None:
    missing = tmp_path / "nowhere"
    result = send(run, tmp_path, owner, missing, tmp_path / "store", tmp_path / "state")

    assert result.code == 8
    assert errors_of(result) == [
        f"transferd: error: cannot read source {missing}: No such file or directory"
    ]
    assert manifests_in(tmp_path / "store") == []
    as_json = send(run, tmp_path, owner, missing, tmp_path / "store", tmp_path / "state", "--json")
    assert (as_json.code, json_error(as_json)["path"]) == (8, str(missing))


def test_a_refused_postgresql_port_exits_8_and_publishes_nothing(
    run: Run, tmp_path: Path, owner: str
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: connecting is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://copier@127.0.0.1:{port}/snds"
    result = send(run, tmp_path, owner, url, tmp_path / "store", tmp_path / "state")

    assert result.code == 8
    assert errors_of(result) == [
        f"transferd: error: cannot connect to PostgreSQL at 127.0.0.1:{port}: "
        "[Errno 111] Connection refused",
        "transferd: hint: check that the server runs and accepts connections from this host",
    ]
    assert manifests_in(tmp_path / "store") == []


# --- the state directory: exit 9, the path named, and the same command resumes --------------


def make_source_that_outgrows_the_journal(root: Path) -> None:
    """Three 1 MiB files (three packs the host acknowledges early) and 4,000 small files with
    long names, whose entries need 1.8 MB of journal."""
    rng = random.Random(16)
    (root / "scans").mkdir(parents=True)
    (root / "forms").mkdir()
    for i in range(3):
        (root / "scans" / f"scan{i}.bin").write_bytes(rng.randbytes(1 << 20))
    for i in range(4000):
        name = f"claim-form-with-a-long-descriptive-name-{i:05d}.txt"
        (root / "forms" / name).write_text(f"form {i}\n" * rng.randrange(1, 20))


def objects_in(store: Path) -> dict[str, int]:
    root = store / "jobs" / JOB / "objects"
    return {p.name: p.stat().st_size for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow  # 4 s: two sends and a restore of 4,000 files
def test_a_full_state_directory_exits_9_and_the_same_command_resumes_once_space_is_freed(
    run: Run, tmp_path: Path, owner: str
) -> None:
    source, store = tmp_path / "big-src", tmp_path / "store"
    make_source_that_outgrows_the_journal(source)
    with PrivateTmpfs(tmp_path / "disk", "8m") as disk:
        state = disk.mountpoint / "state"
        # 384 KiB left: the journal needs 1.8 MB, and more while its WAL is checkpointed
        disk.sh(f"head -c {8 * 2**20 - 384 * 2**10} /dev/zero > {disk.mountpoint}/ballast")
        args = (run, tmp_path, owner, source, store, state, "--pack-size", "1M", "--json")
        full = send(*args, prefix=tuple(disk.prefix))

        journal = state / "jobs" / JOB / "journal.sqlite"
        assert full.code == 9
        assert json_error(full) == {
            "error": f"cannot write the journal {journal}: no space left on the device "
            "(SQLITE_FULL)",
            "hint": f"free space on the file system of {journal.parent} (df -h "
            f"{journal.parent}), {AGAIN}",
            "exit_code": 9,
            "path": str(journal),
            "cause": "no_space",
        }
        assert manifests_in(store) == []
        stored_first = objects_in(store)
        assert sum(stored_first.values()) >= 1 << 20, "no pack was stored before the disk filled"

        disk.sh(f"rm {disk.mountpoint}/ballast")
        resumed = send(*args, prefix=tuple(disk.prefix))

    assert resumed.code == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["complete"] is True
    stored_now = objects_in(store)
    assert stored_first.items() <= stored_now.items()  # nothing the first run stored was lost
    new_bytes = sum(size for name, size in stored_now.items() if name not in stored_first)
    assert summary["bytes_sent"] <= new_bytes  # and none of it was sent again
    restored = run("restore", "--store", str(store), "--job", JOB, "--identity",
                   str(tmp_path / "owner.key"), "--out", str(tmp_path / "out"))  # fmt: skip
    assert restored.code == 0, restored.stderr
    assert_same_tree(source, tmp_path / "out")


def assert_same_tree(a: Path, b: Path) -> None:
    compared = filecmp.dircmp(a, b)
    pending = [compared]
    while pending:
        d = pending.pop()
        assert (d.left_only, d.right_only, d.diff_files, d.funny_files) == ([], [], [], [])
        _, mismatch, errors = filecmp.cmpfiles(d.left, d.right, d.common_files, shallow=False)
        assert (mismatch, errors) == ([], [])
        pending.extend(d.subdirs.values())


def test_a_lock_path_that_is_a_directory_exits_9_naming_it(
    run: Run, tmp_path: Path, owner: str, source: Path
) -> None:
    state = tmp_path / "state"
    lock = state / "jobs" / JOB / "lock"
    lock.mkdir(parents=True)
    result = send(run, tmp_path, owner, source, tmp_path / "store", state)

    assert result.code == 9
    assert errors_of(result) == [
        f"transferd: error: cannot open the lock file {lock}: it is a directory",
        f"transferd: hint: move {lock} out of the way (transferd keeps its own file there), "
        f"{AGAIN}",
    ]
    lock.rmdir()
    assert send(run, tmp_path, owner, source, tmp_path / "store", state).code == 0


# Root may write anywhere; without CAP_DAC_OVERRIDE (and CAP_DAC_READ_SEARCH) it meets the
# permission bits as any user does (tests/integration/test_resume.py does the same).
AS_AN_ORDINARY_USER = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


def test_a_state_directory_this_user_may_not_write_exits_9_naming_it(
    run: Run, tmp_path: Path, owner: str, source: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o500)
    state.chmod(0o500)  # past the umask
    result = send(
        run, tmp_path, owner, source, tmp_path / "store", state, prefix=AS_AN_ORDINARY_USER
    )

    assert result.code == 9
    assert errors_of(result) == [
        f"transferd: error: cannot create the state directory {state / 'jobs'}: permission denied",
        f"transferd: hint: let the user running transferd write {state} (ls -ld {state}), or "
        f"give another state directory with --state DIR; {AGAIN}",
    ]


def test_a_read_only_state_directory_exits_9_and_resumes_once_writable(
    run: Run, tmp_path: Path, owner: str, source: Path
) -> None:
    with PrivateTmpfs(tmp_path / "disk", "4m") as disk:
        state, store = disk.mountpoint / "state", tmp_path / "store"
        first = send(run, tmp_path, owner, source, store, state, prefix=tuple(disk.prefix))
        assert first.code == 0, first.stderr
        disk.sh(f"mount -o remount,ro {disk.mountpoint}")
        refused = send(run, tmp_path, owner, source, store, state, prefix=tuple(disk.prefix))
        disk.sh(f"mount -o remount,rw {disk.mountpoint}")
        again = send(run, tmp_path, owner, source, store, state, prefix=tuple(disk.prefix))

    lock = state / "jobs" / JOB / "lock"
    assert refused.code == 9
    assert errors_of(refused) == [
        f"transferd: error: cannot open the lock file {lock}: read-only file system",
        f"transferd: hint: the file system of {lock.parent} is mounted read-only: remount it "
        f"read-write, or give a state directory on a writable one with --state DIR; {AGAIN}",
    ]
    assert again.code == 0, again.stderr
    assert manifests_in(store) == ["00000000000000000001", "00000000000000000002"]


# --- a storage host that answers what no storage host would: exit 14, at once ---------------


class OddHost:
    """A real HTTP server on loopback that answers every request with one body, 200 OK, and
    counts the requests. It runs its own event loop on a thread: the sender is a child process."""

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body = body
        self.content_type = content_type
        self.requests: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _answer(self, request: web.Request) -> web.Response:
        self.requests.append(f"{request.method} {request.path}")
        return web.Response(body=self.body, content_type=self.content_type)

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> OddHost:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def wrong_shape() -> Iterator[OddHost]:
    with OddHost(b'{"manifests": "1,2,3"}', "application/json") as host:
        yield host


def test_a_host_answering_json_of_the_wrong_shape_exits_14_at_once(
    run: Run, tmp_path: Path, owner: str, source: Path, wrong_shape: OddHost
) -> None:
    result = send(run, tmp_path, owner, source, wrong_shape.url, tmp_path / "state")

    assert result.code == 14
    assert errors_of(result) == [
        f"transferd: error: listing the manifests of job {JOB}: the host at {wrong_shape.url} "
        "sent an answer transferd cannot read: a string where a list was expected",
        "transferd: hint: check that the address is a transferd storage host of a compatible "
        "version (transferd serve), and not a proxy or another service",
    ]
    assert wrong_shape.requests == [f"GET /v1/jobs/{JOB}/manifests"]  # asked once: not retried


LOGIN_PAGE = b"<html><body>Please log in to the proxy</body></html>"


def test_a_host_answering_something_not_json_exits_14_without_retrying(
    run: Run, tmp_path: Path, owner: str, source: Path
) -> None:
    with OddHost(LOGIN_PAGE, "text/html") as host:
        result = send(run, tmp_path, owner, source, host.url, tmp_path / "state", "--json")

    start = LOGIN_PAGE[:40].decode()
    assert result.code == 14
    assert json_error(result) == {
        "error": f"listing the manifests of job {JOB}: the host at {host.url} sent an answer "
        f"transferd cannot read: not JSON ({len(LOGIN_PAGE)} bytes: {start!r})",
        "hint": "check that the address is a transferd storage host of a compatible version "
        "(transferd serve), and not a proxy or another service",
        "exit_code": 14,
        "peer": host.url,
        "problem": f"not JSON ({len(LOGIN_PAGE)} bytes: {start!r})",
    }
    assert host.requests == [f"GET /v1/jobs/{JOB}/manifests"]  # 1 request, not 8
