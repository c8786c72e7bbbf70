"""A follow job under the daemon: ``jobs start … --follow``, its lag in ``jobs status`` and in
the metrics while it follows, ``jobs cutover NAME``, and the copy restored equal."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.daemon.harness import Daemon
from tests.integration.harness import Keys, cli
from tests.postgres.cluster import Cluster, remove, start_cluster
from tests.postgres.follow import digests, pgbench_init
from transferd.core.pgoutput import parse_lsn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def logical() -> Iterator[Cluster]:
    c = start_cluster(logical=True)
    try:
        pgbench_init(c, "claims")
        c.psql("postgres", "CREATE DATABASE claims_new TEMPLATE template0")
        yield c
    finally:
        remove(c)


def test_a_follow_job_is_cut_over_by_jobs_cutover(
    daemon: Daemon, keys: Keys, logical: Cluster
) -> None:
    daemon.start()
    daemon.jobs("start", "claims", logical.url("claims"), "--follow", "-j", "2")
    daemon.wait_job("claims", lambda s: (s.get("follow") or {}).get("phase") == "follow")
    logical.psql("claims", "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid < 50")
    status = daemon.wait_job(
        "claims", lambda s: s["follow"]["transactions"] >= 1 and s["follow"]["manifest"] >= 2
    )
    follow = status["follow"]
    assert follow["lag_seconds"] >= 0
    assert parse_lsn(follow["published_lsn"]) > parse_lsn(follow["consistent_lsn"])
    metrics = daemon.scrape()
    assert any(name == "transferd_follow" and ("measure", "slot_retained_wal_bytes") in labels
               for name, labels in metrics)  # fmt: skip
    cut = json.loads(daemon.jobs("cutover", "claims").stdout)
    assert cut["phase"] == "done"
    assert parse_lsn(cut["follow"]["cutover_lsn"]) > parse_lsn(follow["published_lsn"])
    cli("restore", "--store", daemon.store, "--job", "claims", "--identity", keys.owner_key,
        "--to", logical.url("claims_new"), "-j", "2")  # fmt: skip
    assert digests(logical, "claims_new") == digests(logical, "claims")
    not_follow = daemon.jobs("cutover", "nope", check=False)
    assert not_follow.returncode != 0
    assert daemon.terminate() == 0
