"""``transferd jobs watch`` across a daemon restart, and the rate and ETA it shows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.daemon.harness import TRANSFERD, Daemon, short_dir
from tests.integration.harness import make_keys

MIB = 1 << 20


def _snapshots(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_watch_waits_for_a_restarted_daemon_and_the_daemon_stops_without_a_traceback(
    tmp_path: Path,
) -> None:
    keys = make_keys(tmp_path / "keys")
    source = tmp_path / "src"
    source.mkdir()
    (source / "claims.bin").write_bytes(os.urandom(24 * MIB))
    with short_dir() as sockets:
        daemon = Daemon(tmp_path, sockets, keys).start()
        try:
            daemon.jobs("start", "claims", str(source), "--limit", "1M")
            watch = subprocess.Popen(
                [*TRANSFERD, "jobs", "watch", "--socket", str(daemon.control), "--interval",
                 "0.2", "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            daemon.wait_job("claims", lambda s: s["packs_sent"] >= 1)
            time.sleep(0.5)  # the watch is connected and has shown a few snapshots

            assert daemon.terminate() == 0
            log = daemon.log.read_text()
            assert "Traceback" not in log
            assert "CancelledError" not in log
            assert "level=error" not in log
            time.sleep(1.0)
            assert watch.poll() is None, "the watch waits for the daemon"

            daemon.start()
            daemon.wait_job("claims", lambda s: s["phase"] == "sending")
            time.sleep(1.0)
            watch.send_signal(signal.SIGINT)
            out, err = watch.communicate(timeout=30)
        finally:
            daemon.close()

    assert "Traceback" not in err
    warnings = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    gone = [w["warning"] for w in warnings if "warning" in w]
    assert gone[0].startswith("daemon gone, reconnecting… (the daemon on ")
    assert gone[1].endswith("is back: watching again")
    assert warnings[-1]["exit_code"] == 130
    jobs = [s["jobs"] for s in _snapshots(out)]
    assert len(jobs) >= 4, "snapshots before and after the restart"


@pytest.mark.slow
def test_rate_and_eta_come_from_what_was_sent_and_a_paused_job_has_none(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    source = tmp_path / "src"
    source.mkdir()
    (source / "claims.bin").write_bytes(os.urandom(24 * MIB))
    with short_dir() as sockets:
        daemon = Daemon(tmp_path, sockets, keys).start()
        try:
            daemon.jobs("start", "claims", str(source), "--limit", "1M")
            running = daemon.wait_job("claims", lambda s: s["rate"] is not None, timeout=60)
            paused = json.loads(daemon.jobs("pause", "claims").stdout)
            line = daemon.jobs("list").stdout
            human = subprocess.run(
                [*TRANSFERD, "jobs", "list", "--socket", str(daemon.control)],
                capture_output=True, text=True, timeout=30, check=True,
            ).stdout  # fmt: skip
        finally:
            daemon.close()

    # 1 MiB/s; a token bucket admits its burst (1 s) above it, a pack (1 MiB here) larger than
    # what is left leaves at once, in debt, and the 2 uploads in flight when the window opened
    # may be acknowledged inside it: over a window of at least 5 s, at most this
    pack = 1.5 * MIB
    assert running["rate"] <= (MIB * 6 + pack + 2 * pack) / 5
    assert running["bytes_settled"] <= running["bytes_read"]
    assert running["eta_seconds"] is not None, running
    # the reader is tens of MiB ahead of the limit: an ETA from bytes read said seconds
    remaining = (running["bytes_total"] - running["bytes_settled"]) / (2.5 * MIB)
    assert running["eta_seconds"] >= remaining
    assert (paused["phase"], paused["rate"], paused["eta_seconds"]) == ("paused", None, None)
    assert json.loads(line)["jobs"][0]["rate"] is None
    row = human.splitlines()[1].split()
    assert row[:2] == ["claims", "paused"]
    assert row[-2:] == ["-", "-"], human
