"""End to end, with real processes and sockets: a send survives kills, cuts and a full disk.

Each test sends a tree through a real ``transferd serve`` (via a counting proxy where the test
measures or breaks the link), restores it with the recipient's identity, and compares the trees
byte for byte. These are the few full-stack tests; everything they combine is tested alone too.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import (
    Keys,
    Server,
    cli,
    make_keys,
    make_tree,
    send_args,
    stored_bytes,
    tree,
)
from tests.integration.proxy import ChaosProxy
from transferd.core.constants import CHUNK_MAX

PACK = 1024 * 1024
UPLOADS = 2
WINDOW = UPLOADS * (PACK + CHUNK_MAX)
"""What one kill may cost: every pack in flight, each at most the pack target plus one chunk."""


def restore_and_compare(tmp_path: Path, source: Path, url: str, job: str, keys: Keys) -> None:
    out = tmp_path / f"restored-{job}"
    cli("restore", "--from", url, "--job", job, "--identity", keys.owner_key, "--out", out,
        "--sender", keys.sender, "--sender-key", keys.sender_key)  # fmt: skip
    assert tree(out) == tree(source)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return make_keys(tmp_path / "keys")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    make_tree(src, seed=1, big_mib=24)
    return src


@pytest.mark.slow
def test_sender_killed_at_random_points_resumes_and_resends_at_most_the_window(
    tmp_path: Path, keys: Keys, source: Path
) -> None:
    server = Server(tmp_path / "store", keys.sender).start()
    rng = random.Random(4)
    try:
        with ChaosProxy(server.port) as proxy:
            kills = 0
            args = send_args(source, proxy.url, "claims", keys, tmp_path / "state",
                             "--pack-size", str(PACK), "--uploads", str(UPLOADS))  # fmt: skip
            while True:
                started = proxy.upstream_bytes
                proc = subprocess.Popen(
                    args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
                if kills < 4:
                    # Kill once this run has uploaded a random 2 to 6 MiB: mid-pack, mid-job.
                    target = started + rng.uniform(2, 6) * 2**20
                    while proc.poll() is None and proxy.upstream_bytes < target:
                        time.sleep(0.002)
                    if proc.poll() is None:
                        proc.kill()
                        proc.communicate()
                        kills += 1
                        continue
                out, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, err
                break
            summary = json.loads(out)
            assert summary["complete"] is True
            resent = proxy.upstream_bytes - stored_bytes(tmp_path / "store", "claims")
            # Request headers, inventory and listing requests add a little to the pack bytes.
            assert kills >= 3, "the runs were too short to be killed mid-upload"
            assert resent <= kills * WINDOW + 1024 * 1024, (resent, kills)
        restore_and_compare(tmp_path, source, server.url, "claims", keys)
    finally:
        server.kill()


@pytest.mark.slow
def test_receiver_killed_and_restarted_during_a_send(
    tmp_path: Path, keys: Keys, source: Path
) -> None:
    """The host is killed (SIGKILL) three times while the send is under way, at points set by
    what it has stored, not by the clock: a send faster than a timer must not let the test pass
    without a kill, so the test also checks that each kill happened."""
    store = tmp_path / "store"
    server = Server(store, keys.sender).start()
    try:
        args = send_args(source, server.url, "claims", keys, tmp_path / "state",
                         "--pack-size", str(PACK), "--uploads", str(UPLOADS))  # fmt: skip
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed: list[int | None] = []
        for mib in (2, 5, 8):  # of about 13 MiB stored in all: each kill is mid-send
            while proc.poll() is None and stored_bytes(store, "claims") < mib * 2**20:
                time.sleep(0.005)
            if proc.poll() is not None:
                break
            server.kill()
            assert server.proc is not None
            killed.append(server.proc.returncode)
            time.sleep(0.3)
            server.start()
        out, err = proc.communicate(timeout=180)
        assert killed == [-signal.SIGKILL] * 3, "the send ended before three kills of the host"
        assert proc.returncode == 0, err
        assert json.loads(out)["complete"] is True
        restore_and_compare(tmp_path, source, server.url, "claims", keys)
    finally:
        server.kill()


@pytest.mark.slow
def test_link_cut_mid_upload_is_retried(tmp_path: Path, keys: Keys, source: Path) -> None:
    server = Server(tmp_path / "store", keys.sender).start()
    try:
        with ChaosProxy(server.port) as proxy:
            # Longer than any one request (a pack is at most its target plus one chunk), so each
            # retried upload can get through before the next cut.
            proxy.cut_every(PACK + CHUNK_MAX + 1024 * 1024)
            args = send_args(source, proxy.url, "claims", keys, tmp_path / "state",
                             "--pack-size", str(PACK), "--uploads", "1")  # fmt: skip
            proc = subprocess.run(args, capture_output=True, text=True, timeout=180)
            assert proc.returncode == 0, proc.stderr
            assert proxy.cuts >= 2
        restore_and_compare(tmp_path, source, server.url, "claims", keys)
    finally:
        server.kill()


def test_dead_host_ends_the_run_with_a_clear_message_and_resumable_state(
    tmp_path: Path, keys: Keys, source: Path
) -> None:
    server = Server(tmp_path / "store", keys.sender)  # not started: nobody listens on its port
    args = send_args(source, server.url, "claims", keys, tmp_path / "state", "--retries", "2")
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4, proc.stderr
    error = json.loads(proc.stderr.strip().splitlines()[-1])
    assert "127.0.0.1" in error["error"]
    assert "Traceback" not in proc.stderr
    server.start()
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        restore_and_compare(tmp_path, source, server.url, "claims", keys)
    finally:
        server.kill()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 40 MiB tmpfs for the store (tests run as root, in CI too)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_at_the_host_is_reported_and_the_job_resumes_once_space_is_freed(
    tmp_path: Path, keys: Keys, source: Path, small_disk: Path
) -> None:
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (30 * 1024 * 1024))
    server = Server(small_disk / "store", keys.sender).start()
    try:
        args = send_args(
            source, server.url, "claims", keys, tmp_path / "state", "--pack-size", str(PACK)
        )
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 5, proc.stderr
        assert "out of space" in json.loads(proc.stderr.strip().splitlines()[-1])["error"]
        leftovers = [
            p for p in (small_disk / "store").rglob("*") if p.is_file() and ".tmp" in p.name
        ]
        assert leftovers == []
        filler.unlink()
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        restore_and_compare(tmp_path, source, server.url, "claims", keys)
    finally:
        server.kill()


def test_unreadable_source_files_are_named_and_the_rest_is_copied(
    tmp_path: Path, keys: Keys, source: Path
) -> None:
    """Exit 3: the job completes with what could be read, and says what could not.

    Root reads any file, so the sender runs without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
    (setpriv drops them from its bounding set): a mode-000 file is then really unreadable.
    """
    small, large = source / "forms" / "locked.txt", source / "tables" / "locked.csv"
    small.write_text("cannot be read\n")
    large.write_bytes(b"x" * (1024 * 1024))
    for path in (small, large):
        path.chmod(0)
    send = send_args(source, str(tmp_path / "store"), "claims", keys, tmp_path / "state")
    args = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *send]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    summary = json.loads(proc.stdout.splitlines()[-1])
    assert sorted(f["path"] for f in summary["failures"]) == [
        "forms/locked.txt",
        "tables/locked.csv",
    ]
    assert all("Permission denied" in f["error"] for f in summary["failures"])
    assert "Traceback" not in proc.stderr
    out = tmp_path / "restored"
    cli("restore", "--store", tmp_path / "store", "--job", "claims", "--identity", keys.owner_key,
        "--sender", keys.sender, "--out", out)  # fmt: skip
    for path in (small, large):
        path.unlink()
    assert tree(out) == tree(source)
