"""The daemon as systemd runs it: notifications, a job through SIGKILL, operator controls, metrics.

Each test starts ``transferd daemon`` as a real process with both roles (it sends its jobs to its
own receiving role over loopback HTTP), with NOTIFY_SOCKET pointing at a datagram socket the test
owns, and drives it with the ``transferd jobs`` CLI, as an operator does.
"""

from __future__ import annotations

import json
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.daemon.harness import TRANSFERD, Daemon, make_source
from tests.integration.harness import Keys, cli, tree

pytestmark = pytest.mark.timeout(60)


def test_ready_status_watchdog_then_sigterm_stops_cleanly(daemon: Daemon, keys: Keys) -> None:
    daemon.start()
    ready = daemon.notify.wait_for("READY", "1")
    assert "receiving on http://127.0.0.1:" in ready["STATUS"]
    assert stat.S_IMODE(daemon.control.stat().st_mode) == 0o660
    daemon.notify.collect(1.6)
    assert daemon.notify.count("WATCHDOG") >= 3, "a ping every WATCHDOG_USEC/2 (0.5 s)"

    started = time.monotonic()
    assert daemon.terminate(timeout=30) == 0
    assert time.monotonic() - started < 10
    stopping = daemon.notify.wait_for("STOPPING", "1", timeout=1)
    assert stopping["STATUS"].startswith("stopping")
    assert not daemon.control.exists(), "the control socket is removed on stop"
    log = daemon.log.read_text()
    assert "level=info logger=transferd.daemon msg=stopped" in log
    secret = keys.sender_key.read_text().split()[-1]
    assert "td-secret" not in log
    assert secret not in log


def test_a_job_killed_with_the_daemon_resumes_and_restores_identical(
    tmp_path: Path, daemon: Daemon, keys: Keys
) -> None:
    source = make_source(tmp_path / "src", mib=24)
    daemon.start()
    daemon.jobs("start", "claims", str(source), "--limit", "3M")
    daemon.wait_job("claims", lambda s: s["packs_sent"] >= 3)
    daemon.jobs("limit", "claims", "512K")  # kept in the job's definition across restarts
    daemon.kill()  # SIGKILL: no drain, no checkpoint beyond what the journal committed
    held = daemon.objects_held("claims")
    assert held >= 3

    daemon.start()  # the job continues from its checkpoint without being asked
    assert daemon.status("claims")["phase"] in ("queued", "reconciling", "sending")
    daemon.wait_job("claims", lambda s: s["packs_sent"] >= 1)
    assert daemon.terminate(timeout=15) == 0  # a clean stop mid-job: drained, checkpointed
    daemon.notify.wait_for("STOPPING", "1", timeout=1)
    assert daemon.objects_held("claims") > held

    daemon.start()
    daemon.jobs("limit", "claims", "0")
    done = daemon.wait_job("claims", lambda s: s["phase"] in ("done", "failed"))
    assert done["phase"] == "done", done
    assert done["sequence"] == 1
    saved = done["bytes_reused"] + done["bytes_deduplicated"]
    assert saved >= 4 << 20, done  # what the host acknowledged before the stops is not resent
    assert daemon.terminate() == 0

    out = tmp_path / "restored"
    cli("restore", "--store", daemon.store, "--job", "claims", "--identity", keys.owner_key,
        "--out", out, "--sender", keys.sender)  # fmt: skip
    assert tree(out) == tree(source)


def test_pause_resume_limit_cancel_purge_and_metrics(tmp_path: Path, daemon: Daemon) -> None:
    source = make_source(tmp_path / "src", mib=12)
    daemon.start()
    daemon.jobs("start", "forms", str(source), "--limit", "3M")
    daemon.wait_job("forms", lambda s: s["packs_sent"] >= 1)

    assert json.loads(daemon.jobs("pause", "forms").stdout)["phase"] == "paused"
    paused = daemon.wait_job("forms", lambda s: s["uploads_in_flight"] == 0)
    held = daemon.objects_held("forms")
    time.sleep(1.5)
    assert daemon.status("forms")["bytes_sent"] == paused["bytes_sent"], "no new bytes"
    assert daemon.objects_held("forms") == held
    metrics = daemon.scrape()
    assert metrics[("transferd_job_phase", (("job", "forms"), ("phase", "paused")))] == 1
    sent = (("job", "forms"), ("stage", "sent"))
    assert metrics[("transferd_bytes_total", sent)] == paused["bytes_sent"]
    limit = ("transferd_bandwidth_limit_bytes_per_second", (("job", "forms"),))
    assert metrics[limit] == 3 << 20

    daemon.jobs("resume", "forms")
    daemon.jobs("limit", "forms", "0")
    assert daemon.wait_job("forms", lambda s: s["phase"] == "done")["last_error"] is None
    metrics = daemon.scrape()
    assert metrics[("transferd_bytes_total", sent)] > paused["bytes_sent"]
    assert metrics[("transferd_bytes_total", (("job", "forms"), ("stage", "read")))] >= 12 << 20
    assert metrics[("transferd_objects_total", (("job", "forms"), ("stage", "entries")))] == 43
    assert metrics[("transferd_stage_seconds_total", (("job", "forms"), ("stage", "paused")))] > 1
    assert metrics[limit] == 0

    # cancel keeps what the host holds; --purge deletes it, and the job with it
    other = make_source(tmp_path / "src2", mib=8, seed=8)
    daemon.jobs("start", "other", str(other), "--limit", "2M")
    daemon.wait_job("other", lambda s: s["packs_sent"] >= 1)
    cancelled = json.loads(daemon.jobs("cancel", "other").stdout)
    assert cancelled["phase"] == "cancelled"
    assert daemon.objects_held("other") >= 1
    purged = json.loads(daemon.jobs("cancel", "forms", "--purge").stdout)["purged"]
    assert purged["objects_deleted"] > held
    assert daemon.objects_held("forms") == 0
    assert daemon.jobs("status", "forms", check=False).returncode == 10

    refused = daemon.jobs("start", "pg", "postgresql://u:hunter2@127.0.0.1/db", check=False)
    assert refused.returncode == 2
    assert "the source URL holds a password" in json.loads(refused.stderr)["error"]

    listed = json.loads(daemon.jobs("list").stdout)
    assert [j["name"] for j in listed["jobs"]] == ["other"]
    watched = daemon.jobs("watch", "--count", "1").stdout.splitlines()
    assert json.loads(watched[0])["jobs"][0]["phase"] == "cancelled"
    logs = daemon.jobs("logs", "other").stdout.splitlines()
    assert any("job cancelled" in json.loads(line)["line"] for line in logs)
    assert daemon.terminate() == 0
    assert "hunter2" not in daemon.log.read_text()


def test_jobs_without_a_daemon_exit_7(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*TRANSFERD, "jobs", "list", "--socket", str(tmp_path / "none.sock")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 7
    assert proc.stderr.startswith(f"transferd: error: no daemon answers on {tmp_path}")


def test_a_key_file_others_can_read_is_refused(daemon: Daemon, keys: Keys) -> None:
    keys.sender_key.chmod(0o644)
    proc = subprocess.run(
        [*TRANSFERD, "daemon", "--config", str(daemon.config)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == (
        f"transferd: error: the sender key {keys.sender_key} is readable by group or others "
        "(mode 0644); refusing to use it"
    )
    keys.sender_key.chmod(0o600)
    check = subprocess.run(
        [*TRANSFERD, "daemon", "--config", str(daemon.config), "--check", "--json"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout)["sender"] == keys.sender
