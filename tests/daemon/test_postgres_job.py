"""A PostgreSQL job in the daemon keeps its snapshot across runs that failed on the store.

The exported snapshot lives only as long as the transaction that exported it, so the daemon, the
longest-lived process, keeps the first run's source open as the job's keeper, and later runs adopt
its snapshot: a store outage costs a retry, not a new snapshot (which would read every table
again and mix two points in time in one job).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.harness import Daemon
from tests.integration.harness import Keys, cli
from tests.postgres.cluster import Cluster, remove, start_cluster
from transferd.core.keys import SenderSecretKey, parse_key_file
from transferd.daemon.config import load_config
from transferd.daemon.manager import Manager
from transferd.errors import TransientStoreError
from transferd.send import compose as compose_module
from transferd.sources.postgres.source import PostgresSource
from transferd.stores.base import Store
from transferd.stores.open import open_store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = start_cluster()
    try:
        c.psql("postgres", "CREATE DATABASE claims")
        c.psql("claims", "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v "
                         "FROM generate_series(1, 20000) g")  # fmt: skip
        yield c
    finally:
        remove(c)


class DownOnce:
    """A store that is unreachable for the first uploads of the job, then fine: ``failures``
    is shared by every store opened, whichever of them uploads first."""

    def __init__(self, inner: Store, failures: list[int]) -> None:
        self.inner = inner
        self.description = inner.description
        self.failures = failures

    async def put_object(self, job: str, name: str, data: bytes) -> None:
        if self.failures[0] > 0:
            self.failures[0] -= 1
            raise TransientStoreError("connection refused")
        await self.inner.put_object(job, name, data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_a_store_outage_keeps_the_snapshot(
    tmp_path: Path, keys: Keys, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "store").mkdir()
    config = tmp_path / "t.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[send]\nstore = "{tmp_path / "store"}"\nrecipients = ["{keys.owner}"]\n'
        "retries = 1\nretry_delay = 0.2\nworkers = 1\n"
    )
    failures = [1]

    def opener(location: str, *args: object, **kwargs: object) -> Store:
        return DownOnce(open_store(location), failures)  # type: ignore[return-value]

    monkeypatch.setattr(compose_module, "open_store", opener)
    sender = parse_key_file(keys.sender_key.read_text())
    assert isinstance(sender, SenderSecretKey)

    async def main() -> None:
        m = Manager(load_config(config, {}), sender)
        await m.start()
        await m.start_job("claims", cluster.url("claims"), None, [], None)
        job = m.get("claims")
        snapshots: set[str | None] = set()
        while job.phase not in ("done", "failed"):
            for source in (job.source, job.keeper):
                if isinstance(source, PostgresSource):
                    snapshots.add(source.snapshot_id)
            await asyncio.sleep(0.05)
        assert job.phase == "done", job.definition.last_error
        # The phase reads "done" a moment before the job's task has released its sources.
        if job.task is not None:
            await asyncio.wait_for(asyncio.shield(job.task), 30)
        assert job.runs == 2, "the first run failed on the store"
        assert job.errors["TransientStoreError"] == 1
        assert job.source is None
        assert job.keeper is None, "released once the job is done"
        assert len(snapshots - {None}) == 1, "both runs read the same snapshot"
        await m.stop()

    asyncio.run(main())


def test_a_daemon_job_copies_the_tables_and_options_it_was_given(
    tmp_path: Path, daemon: Daemon, keys: Keys, cluster: Cluster
) -> None:
    cluster.psql("claims", "CREATE TABLE staging AS SELECT 1 AS id")
    daemon.start()
    url = cluster.url("claims")
    daemon.jobs("start", "sel", url, "-T", "staging", "--no-owner", "--no-privileges", "-j", "2")
    daemon.wait_job("sel", lambda s: s["phase"] in ("done", "failed"))
    assert daemon.status("sel")["phase"] == "done"
    kept = json.loads((tmp_path / "state" / "daemon" / "jobs" / "sel.json").read_text())
    assert kept["postgres"]["jobs"] == 2
    assert kept["postgres"]["selection"]["exclude_table"] == ["staging"]

    other = daemon.jobs("start", "sel", url, "-T", "t", check=False)  # other options: refused
    assert other.returncode == 2
    assert "with other options" in json.loads(other.stderr)["error"]
    not_pg = daemon.jobs("start", "dir", str(tmp_path), "--no-owner", check=False)
    assert not_pg.returncode == 2
    assert "PostgreSQL sources" in json.loads(not_pg.stderr)["error"]

    cli("restore", "--store", daemon.store, "--job", "sel", "--identity", keys.owner_key,
        "--out", tmp_path / "out")  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "out" / "tables" / "public").iterdir()) == ["t"]
    assert "OWNER TO" not in (tmp_path / "out" / "ddl" / "pre-data.sql").read_text()
    assert daemon.terminate() == 0
