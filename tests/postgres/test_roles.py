"""A copy from a cloud whose roles the sovereign cluster does not have: owners and grants.

A managed PostgreSQL (Azure's Flexible Server) owns and grants objects to roles of its own;
the target cluster has none of them. Restoring a copy that names them fails with a clear error
and a hint, leaves the target empty, and a copy made with --no-owner --no-privileges restores.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.postgres.cluster import Cluster
from tests.postgres.roundtrip import restore_db, send_db
from transferd.core.keys import RecipientIdentity, SenderSecretKey
from transferd.errors import TargetError
from transferd.sources.postgres.listing import Selection
from transferd.sources.postgres.source import PgOptions
from transferd.stores.memory import MemoryStore


def test_a_copy_naming_missing_roles_fails_clearly_and_one_without_them_restores(
    cluster: Cluster,
    source_db: str,
    empty_db: str,
    sender: SenderSecretKey,
    owner: RecipientIdentity,
    tmp_path: Path,
) -> None:
    role = f"cloud_admin_{os.getpid()}"
    cluster.psql("postgres", f"CREATE ROLE {role}")
    cluster.psql(source_db, f"ALTER TABLE pgbench_branches OWNER TO {role}")
    cluster.psql(source_db, f"GRANT SELECT ON pgbench_accounts TO {role}")
    store = MemoryStore()
    url = cluster.url(source_db)
    asyncio.run(send_db(store, url, sender, owner, tmp_path / "state", job="with-roles"))
    bare = PgOptions(jobs=2, selection=Selection(no_owner=True, no_privileges=True))
    asyncio.run(send_db(store, url, sender, owner, tmp_path / "state", bare, job="bare"))
    # the source's cloud is left behind: its role does not exist where the copy is restored
    cluster.psql(source_db, f"REASSIGN OWNED BY {role} TO postgres; DROP OWNED BY {role}")
    cluster.psql("postgres", f"DROP ROLE {role}")

    with pytest.raises(TargetError, match=rf'pre-data.sql: .*role "{role}" does not exist') as info:
        restore_db(store, cluster.url(empty_db), sender, owner, job="with-roles")
    assert "--no-owner --no-privileges" in (info.value.hint or "")
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    assert cluster.psql(empty_db, tables) == "0\n"  # pre-data ran in one transaction

    restore_db(store, cluster.url(empty_db), sender, owner, job="bare")
    assert cluster.psql(empty_db, "SELECT count(*) FROM pgbench_accounts") == "100000\n"
    owners = "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
    assert cluster.psql(empty_db, owners) == "postgres\n"  # the restoring role
    acl = "SELECT relacl IS NULL FROM pg_class WHERE relname = 'pgbench_accounts'"
    assert cluster.psql(empty_db, acl) == "t\n"
