"""Restore and rekey against a storage host over HTTP: a reader key, range reads, the CLI."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.cli.conftest import REPO
from tests.sent import Keys
from tests.stores.backends import serving
from tests.treeutil import make_tree, snapshot
from transferd.core.keys import SenderSecretKey, render_key_file
from transferd.host.auth import Authorizer
from transferd.host.server import make_app
from transferd.rekey import rekey
from transferd.restore.directory import restore
from transferd.send.config import PipelineConfig
from transferd.send.run import send
from transferd.sources.directory import DirectorySource
from transferd.stores.http import HttpStore
from transferd.stores.local import LocalStore

JOB = "tree"
READER = SenderSecretKey(bytes([9] * 32))


async def _cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(REPO)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "transferd", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def test_send_restore_and_rekey_over_http(keys: Keys, tmp_path: Path) -> None:
    make_tree(tmp_path / "src", big=3 * 1024 * 1024)
    (tmp_path / "owner.key").write_text(render_key_file(keys.owner, "2026-11-22T21:00:00Z"))
    (tmp_path / "reader.key").write_text(render_key_file(READER, "2026-11-22T21:00:00Z"))
    for name in ("owner.key", "reader.key"):
        os.chmod(tmp_path / name, 0o600)
    authorizer = Authorizer(writers=[("*", keys.sender.public())], readers=[("*", READER.public())])

    async def run() -> None:
        app = make_app(LocalStore(tmp_path / "store"), authorizer)
        async with serving(app) as url:
            writer = HttpStore(url, keys.sender)
            reader = HttpStore(url, READER)
            try:
                await send(
                    source=DirectorySource(tmp_path / "src"),
                    store=writer,
                    job=JOB,
                    sender=keys.sender,
                    recipients=[keys.owner.public()],
                    state_dir=tmp_path / "state",
                    config=PipelineConfig(workers=2),
                )
                result = await restore(
                    store=reader,
                    job=JOB,
                    identity=keys.owner,
                    out=tmp_path / "out",
                    sender=keys.sender.public(),
                )
                assert result.bytes_fetched < 1.1 * result.manifest.body.totals.stored_bytes
                await rekey(
                    store=writer,
                    job=JOB,
                    identity=keys.owner,
                    sender=keys.sender,
                    add=[keys.other.public()],
                    remove=[],
                    created="2026-11-23T00:00:00Z",
                )
                code, out, err = await _cli(
                    "restore", "--from", url, "--reader-key", "reader.key", "--job", JOB,
                    "--identity", "owner.key", "--out", "cli-out",
                    "--sender", keys.sender.public().to_text(), cwd=tmp_path,
                )  # fmt: skip
                assert (code, err) == (0, ""), err
                assert "manifest 2 restored into cli-out" in out
            finally:
                await writer.close()
                await reader.close()

    asyncio.run(run())

    assert snapshot(tmp_path / "out") == snapshot(tmp_path / "src")
    assert snapshot(tmp_path / "cli-out") == snapshot(tmp_path / "src")
