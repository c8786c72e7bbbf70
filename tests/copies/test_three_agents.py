"""Three agents, three processes, three state directories, one S3 store; one agent is killed.

The plan gives agent-2 one large job (bravo). agent-2 is killed with SIGKILL once the store holds
some of bravo's packs; agent-1 or agent-3, done with their own jobs, sees bravo's lease unchanged
for a whole lease, takes the job over, adopts the packs agent-2 stored (their headers open with
the job key every agent derives from the copy secret), and finishes it. Then the whole copy is
verified with the sender's public key only, and bravo is restored from S3 byte for byte.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.harness import TRANSFERD, cli, make_keys, tree
from tests.stores.s3server import S3Server, start_s3_server

JOBS = {"alpha": "agent-1", "bravo": "agent-2", "charlie": "agent-3", "delta": "agent-3"}
MIB = 1024 * 1024


def make_sources(root: Path) -> dict[str, Path]:
    rng = random.Random(9)
    sources = {}
    for job in JOBS:
        src = root / job
        (src / "sub").mkdir(parents=True)
        (src / "readme.txt").write_text(f"job {job}\n" * 100)
        (src / "sub" / "rows.csv").write_text("".join(f"{i};{job};{i * 7}\n" for i in range(20000)))
        sources[job] = src
    for i in range(6):  # bravo: 96 MiB that do not compress, in 1 MiB packs
        (sources["bravo"] / f"scan{i}.bin").write_bytes(rng.randbytes(16 * MIB))
    return sources


def write_plan(tmp: Path, server: S3Server, bucket: str, sources: dict[str, Path]) -> Path:
    keys = make_keys(tmp / "keys")
    cli("copy", "secret", "-o", tmp / "keys" / "copy.secret", "--copy", "snds-test")
    server.credentials_file(tmp / "keys")
    agents: dict[str, list[str]] = {}
    for job, agent in JOBS.items():
        agents.setdefault(agent, []).append(job)
    lines = [
        "[copy]",
        'name = "snds-test"',
        f'store = "s3://{bucket}/copy"',
        'sender_key = "keys/sender.key"',
        'copy_secret = "keys/copy.secret"',
        f'recipients = ["{keys.owner}"]',
        "lease_seconds = 6",  # renewals every 2 s keep a lease alive even on a loaded machine
        "settle_seconds = 0.3",
        "[pipeline]",
        "workers = 1",
        "uploads = 1",
        f"pack_size = {MIB}",
        "[s3]",
        f'endpoint = "{server.endpoint}"',
        'credentials_file = "keys/s3.credentials"',
        "read_timeout = 10",  # a request rclone leaves unanswered is retried, not awaited 120 s
    ]
    for job, src in sources.items():
        lines += ["[[job]]", f'name = "{job}"', f'source = "{src}"']
    lines.append("[agents]")
    lines += [f"{agent} = {json.dumps(jobs)}" for agent, jobs in sorted(agents.items())]
    plan = tmp / "plan.toml"
    plan.write_text("\n".join(lines) + "\n")
    return plan


def start_agent(plan: Path, agent: str, tmp: Path) -> subprocess.Popen[str]:
    log = open(tmp / f"{agent}.log", "w")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [*TRANSFERD, "agent", "--plan", str(plan), "--agent", agent,
         "--state", str(tmp / f"state-{agent}"), "--json"],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    log.close()
    return proc


def stored_objects(server: S3Server, bucket: str, job: str) -> int:
    objects = server.root / bucket / "copy" / "jobs" / job / "objects"
    return sum(1 for p in objects.rglob("*") if p.is_file()) if objects.exists() else 0


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_killed_agents_job_is_finished_by_another_and_the_copy_verifies(tmp_path: Path) -> None:
    server = start_s3_server(tmp_path / "s3" / "buckets")
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        bucket = asyncio.run(server.new_bucket())
        sources = make_sources(tmp_path / "sources")
        plan = write_plan(tmp_path, server, bucket, sources)
        procs = {a: start_agent(plan, a, tmp_path) for a in ("agent-1", "agent-2", "agent-3")}

        deadline = time.monotonic() + 60
        while stored_objects(server, bucket, "bravo") < 8:
            assert procs["agent-2"].poll() is None, (tmp_path / "agent-2.log").read_text()
            assert time.monotonic() < deadline, "agent-2 stored too few packs of bravo"
            time.sleep(0.02)
        procs["agent-2"].send_signal(signal.SIGKILL)
        procs["agent-2"].communicate()
        killed_at = stored_objects(server, bucket, "bravo")

        results = {}
        for agent in ("agent-1", "agent-3"):
            out, _ = procs[agent].communicate(timeout=180)
            log = (tmp_path / f"{agent}.log").read_text()
            assert procs[agent].returncode == 0, log
            results[agent] = json.loads(out)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None and not proc.stdout.closed:
                proc.stdout.close()
        server.stop()
        server = start_s3_server(tmp_path / "s3" / "buckets", server.port)

    try:
        ran = {j["job"]: (agent, j) for agent, r in results.items() for j in r["jobs"]}
        assert set(ran) == {"alpha", "bravo", "charlie", "delta"}
        taker, bravo = ran["bravo"]
        assert bravo["taken_over_from"] == "agent-2"
        assert bravo["packs_adopted"] >= 1, f"{taker} adopted none of the {killed_at} packs"
        assert all(r["copy_complete"] for r in results.values())
        logs = "".join((tmp_path / f"{a}.log").read_text() for a in ("agent-1", "agent-3"))
        assert "taking over job bravo from agent agent-2" in logs

        env = {**os.environ, "TRANSFERD_S3_CONFIG": str(server.config_file(tmp_path / "keys"))}
        sender = (tmp_path / "keys" / "sender.key").read_text().split("public key: ")[1].split()[0]
        verified = subprocess.run(
            [*TRANSFERD, "verify", "--copy", "snds-test", "--store", f"s3://{bucket}/copy",
             "--sender", sender, "--seen-state", str(tmp_path / "seen.json"),
             "--report-json", str(tmp_path / "copy-report.json"),
             "--report-html", str(tmp_path / "copy-report.html")],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "PASS, the copy is complete and untouched" in verified.stdout
        report = json.loads((tmp_path / "copy-report.json").read_text())
        assert sorted(report["jobs"]) == sorted(JOBS)
        assert all(j["verdict"] == "pass" for j in report["jobs"].values())
        page = (tmp_path / "copy-report.html").read_text()
        assert '<div class="word">PASS</div>' in page
        assert report["report_sha256"] in page

        status = subprocess.run(
            [*TRANSFERD, "copy", "status", "--plan", str(tmp_path / "plan.toml"), "--json"],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        jobs = {j["job"]: j for j in json.loads(status.stdout)["jobs"]}
        assert all(j["manifest"] == 1 for j in jobs.values())
        assert jobs["bravo"]["lease"]["state"] == "done"
        assert jobs["bravo"]["lease"]["agent"] == taker

        restored = subprocess.run(
            [*TRANSFERD, "restore", "--store", f"s3://{bucket}/copy", "--job", "bravo",
             "--identity", str(tmp_path / "keys" / "owner.key"), "--out",
             str(tmp_path / "bravo-restored"), "--sender", sender],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert restored.returncode == 0, restored.stderr
        assert tree(tmp_path / "bravo-restored") == tree(sources["bravo"])
    finally:
        server.stop()
