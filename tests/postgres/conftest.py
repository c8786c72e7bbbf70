"""Fixtures of the PostgreSQL tests: one cluster per pytest-xdist worker, a template database
filled once (pgbench tables and tests/postgres/awkward.sql), and a fresh copy of it per test."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres.cluster import Cluster, remove, start_cluster
from transferd.core.keys import RecipientIdentity, SenderSecretKey

TEMPLATE = "transferd_template"
AWKWARD = Path(__file__).with_name("awkward.sql")
_names = itertools.count(1)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    c = start_cluster()
    try:
        c.psql("postgres", f"CREATE DATABASE {TEMPLATE}")
        subprocess.run(
            [c.tool("pgbench"), "-i", "-q", "-s", "1", "-h", "127.0.0.1", "-p", str(c.port),
             "-U", "postgres", TEMPLATE],
            capture_output=True, check=True, timeout=120,
        )  # fmt: skip
        c.psql_file(TEMPLATE, AWKWARD)
        c.psql(TEMPLATE, "VACUUM ANALYZE")
        yield c
    finally:
        remove(c)


@pytest.fixture(scope="module")
def logical() -> Iterator[Cluster]:
    """A cluster of the module's own with wal_level=logical, for follow mode's tests."""
    c = start_cluster(logical=True)
    try:
        yield c
    finally:
        remove(c)


@pytest.fixture
def source_db(cluster: Cluster) -> Iterator[str]:
    """A database of its own for the test, copied from the template (pgbench and awkward)."""
    name = f"src_{os.getpid()}_{next(_names)}"
    cluster.psql("postgres", f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield name
    cluster.psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def empty_db(cluster: Cluster) -> Iterator[str]:
    name = f"dst_{os.getpid()}_{next(_names)}"
    cluster.psql("postgres", f"CREATE DATABASE {name} TEMPLATE template0")
    yield name
    cluster.psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def sender() -> SenderSecretKey:
    return SenderSecretKey(bytes(range(32)))


@pytest.fixture(scope="session")
def owner() -> RecipientIdentity:
    return RecipientIdentity(bytes(range(1, 33)))
