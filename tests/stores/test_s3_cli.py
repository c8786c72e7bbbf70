"""S3 as an operator meets it: send into a bucket through its failures, serve a bucket, verify it.

A missing bucket, refused credentials and an endpoint that goes away in the middle of a send each
end the run with their own message and exit code 4, and leave a state the same command resumes:
the packs already in the bucket are not sent again.
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

from tests.host.test_serve import serve
from tests.integration.harness import TRANSFERD, make_keys, tree
from tests.stores.s3server import S3Server, free_port, start_s3_server

MIB = 1024 * 1024


def run(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TRANSFERD, *map(str, args)],
        capture_output=True, text=True, env=env, timeout=180, check=False,
    )  # fmt: skip


def objects(server: S3Server, bucket: str, job: str) -> int:
    root = server.root / bucket / "copy" / "jobs" / job / "objects"
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.exists() else 0


@pytest.mark.slow
def test_send_to_s3_names_each_failure_and_resumes_after_it(tmp_path: Path) -> None:
    port = free_port()
    server = start_s3_server(tmp_path / "s3" / "buckets", port)
    try:
        keys = make_keys(tmp_path / "keys")
        src = tmp_path / "src"
        src.mkdir()
        rng = random.Random(5)
        for i in range(5):
            (src / f"part{i}.bin").write_bytes(rng.randbytes(8 * MIB))
        (src / "notes.txt").write_text("résumé\n" * 1000)
        config = server.config_file(tmp_path / "keys")
        env = {**os.environ, "TRANSFERD_S3_CONFIG": str(config)}
        bucket = "snds-copy"
        send = ["send", src, "--to", f"s3://{bucket}/copy", "--job", "dcir",
                "--sender-key", keys.sender_key, "--recipient", keys.owner,
                "--state", tmp_path / "state", "--pack-size", "1M", "--uploads", "1",
                "--workers", "1", "--retries", "3", "--json"]  # fmt: skip

        missing = run(env, *send)
        assert missing.returncode == 4, missing.stderr
        assert f"the bucket {bucket} does not exist at {server.endpoint}" in missing.stderr

        asyncio.run(_create_bucket(server, bucket))
        wrong_config = server.config_file(tmp_path, secret="wrong")  # noqa: S106
        wrong = dict(env, TRANSFERD_S3_CONFIG=str(wrong_config))
        refused = run(wrong, *send)
        assert refused.returncode == 4, refused.stderr
        assert "the S3 endpoint refused the credentials" in refused.stderr
        assert "wrong" not in refused.stderr

        proc = subprocess.Popen(
            [*TRANSFERD, *map(str, send)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while objects(server, bucket, "dcir") < 6:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 4, stderr
        assert f"cannot reach the S3 endpoint {server.endpoint}" in stderr
        stored = objects(server, bucket, "dcir")

        server = start_s3_server(tmp_path / "s3" / "buckets", port)
        resumed = run(env, *send)
        assert resumed.returncode == 0, resumed.stderr
        summary = json.loads(resumed.stdout.splitlines()[-1])
        assert summary["bytes_sent"] < summary["stored_bytes"]  # what was stored is not resent
        assert stored >= 6

        verified = run(env, "verify", "--store", f"s3://{bucket}/copy", "--job", "dcir",
                       "--sender", keys.sender, "--seen-state", tmp_path / "seen.json")  # fmt: skip
        assert verified.returncode == 0, verified.stdout + verified.stderr
        restored = run(env, "restore", "--store", f"s3://{bucket}/copy", "--job", "dcir",
                       "--identity", keys.owner_key, "--out", tmp_path / "out")  # fmt: skip
        assert restored.returncode == 0, restored.stderr
        assert tree(tmp_path / "out") == tree(src)
    finally:
        server.stop()


async def _create_bucket(server: S3Server, name: str) -> None:
    from tests.stores.s3server import KEY, SECRET
    from transferd.stores.s3 import botocore_session

    async with botocore_session().create_client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=KEY, aws_secret_access_key=SECRET,
    ) as client:  # fmt: skip
        await client.create_bucket(Bucket=name)


def test_a_storage_host_keeps_its_jobs_in_a_bucket(tmp_path: Path) -> None:
    server = start_s3_server(tmp_path / "s3" / "buckets")
    try:
        bucket = asyncio.run(server.new_bucket())
        keys = make_keys(tmp_path / "keys")
        config = server.config_file(tmp_path / "keys")
        (tmp_path / "keys" / "s3.toml").write_text(
            config.read_text() + f'\n[serve]\nstore = "s3://{bucket}/host"\n'
        )
        src = tmp_path / "src"
        (src / "sub").mkdir(parents=True)
        (src / "sub" / "a.csv").write_text("a;b\n" * 10000)
        with serve(tmp_path, "--config", str(tmp_path / "keys" / "s3.toml"),
                   "--listen", "127.0.0.1:0", "--allow", f"*={keys.sender}") as host:  # fmt: skip
            sent = run(dict(os.environ), "send", src, "--to", host.url, "--job", "pmsi",
                       "--sender-key", keys.sender_key, "--recipient", keys.owner,
                       "--state", tmp_path / "state")  # fmt: skip
            assert sent.returncode == 0, sent.stderr + host.log()
        env = {**os.environ, "TRANSFERD_S3_CONFIG": str(config)}
        verified = run(env, "verify", "--store", f"s3://{bucket}/host", "--job", "pmsi",
                       "--sender", keys.sender, "--seen-state", tmp_path / "seen.json")  # fmt: skip
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert (server.root / bucket / "host" / "jobs" / "pmsi" / "manifests").is_dir()
    finally:
        server.stop()
