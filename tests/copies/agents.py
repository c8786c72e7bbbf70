"""Agents as real processes for the copy tests: a plan on an S3 server, and agents started on it.

The server is ministack (tests/stores/lockserver.py): several agents share a store only where
If-None-Match is honoured (stores/s3probe.py), which rclone serve s3 does not.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from tests.integration.harness import TRANSFERD, Keys, cli, make_keys
from tests.stores.lockserver import LockServer
from tests.stores.s3server import KEY, SECRET, S3Server

MIB = 1024 * 1024


def write_plan(
    tmp: Path,
    server: LockServer | S3Server,
    bucket: str,
    sources: dict[str, Path],
    assigned: dict[str, str],
    *,
    lease_seconds: float,
    settle_seconds: float = 0.3,
    s3_extra: str = "",
) -> tuple[Path, Keys]:
    """A plan of copy ``snds-test`` into ``s3://BUCKET/copy``: each job of ``sources`` given to
    the agent ``assigned`` names, in 1 MiB packs on one worker (slow enough to act on)."""
    keys = make_keys(tmp / "keys")
    cli("copy", "secret", "-o", tmp / "keys" / "copy.secret", "--copy", "snds-test")
    creds = tmp / "keys" / "s3.credentials"
    creds.write_text(f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n")
    creds.chmod(0o600)
    agents: dict[str, list[str]] = {}
    for job, agent in assigned.items():
        agents.setdefault(agent, []).append(job)
    lines = [
        "[copy]", 'name = "snds-test"', f'store = "s3://{bucket}/copy"',
        'sender_key = "keys/sender.key"', 'copy_secret = "keys/copy.secret"',
        f'recipients = ["{keys.owner}"]', f"lease_seconds = {lease_seconds}",
        f"settle_seconds = {settle_seconds}",
        "[pipeline]", "workers = 1", "uploads = 1", f"pack_size = {MIB}",
        "[s3]", f'endpoint = "{server.endpoint}"', 'credentials_file = "keys/s3.credentials"',
        "read_timeout = 10", s3_extra,
    ]  # fmt: skip
    for job, src in sources.items():
        lines += ["[[job]]", f'name = "{job}"', f'source = "{src}"']
    lines.append("[agents]")
    lines += [f"{agent} = {json.dumps(jobs)}" for agent, jobs in sorted(agents.items())]
    plan = tmp / "plan.toml"
    plan.write_text("\n".join(lines) + "\n")
    return plan, keys


def start_agent(plan: Path, agent: str, tmp: Path) -> subprocess.Popen[str]:
    log = open(tmp / f"{agent}.log", "w")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [*TRANSFERD, "agent", "--plan", str(plan), "--agent", agent,
         "--state", str(tmp / f"state-{agent}"), "--json"],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    log.close()
    return proc


def stored_objects(server: LockServer, bucket: str, job: str) -> int:
    async def count() -> int:
        async with server.client() as c:  # type: ignore[attr-defined]
            page = await c.list_objects_v2(Bucket=bucket, Prefix=f"copy/jobs/{job}/objects/")
            return int(page.get("KeyCount", 0))

    return asyncio.run(count())


def stop_all(procs: dict[str, subprocess.Popen[str]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None and not proc.stdout.closed:
            proc.stdout.close()
