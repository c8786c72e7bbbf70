"""Object Lock and the probe, on a server that enforces them (ministack) and one that does not
(rclone serve s3): what the probe finds and records, retention on everything stored but lease
records, a multipart upload whose lock headers the server dropped, and refusals that name the
missing feature."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from tests.stores.backends import random_object, signed_manifest
from tests.stores.lockserver import shared_lock_server
from tests.stores.s3server import shared_server
from transferd.errors import PermanentStoreError
from transferd.stores.s3 import S3Store
from transferd.stores.s3lock import LockPolicy
from transferd.stores.s3probe import RECORD, ProbeRecord, shared_writes_needed

JOB, COPY = "dcir", "snds"
POLICY = LockPolicy(30, "COMPLIANCE")


async def test_the_probe_finds_what_ministack_enforces_and_records_it_in_the_store() -> None:
    server = shared_lock_server()
    bucket = await server.new_bucket()
    store = S3Store(server.settings(bucket, "v1/", lock=LockPolicy(1)))
    try:
        record = await store.probed()
        assert (record.if_none_match, record.if_match, record.object_lock) == (True, True, True)
        assert (record.lock_enforced, record.versioning) == (True, "Enabled")
        async with server.client() as c:  # type: ignore[attr-defined]
            stored = await c.get_object(Bucket=bucket, Key=f"v1/{RECORD}")
            assert ProbeRecord.from_bytes(await stored["Body"].read()) == record
            listed = await c.list_object_versions(Bucket=bucket, Prefix="v1/.transferd-probe/")
        left = {v["Key"] for v in listed.get("Versions", []) + listed.get("DeleteMarkers", [])}
        assert left == {f"v1/{RECORD}"}  # every scratch key and version removed
    finally:
        await store.close()


async def test_everything_stored_is_retained_but_lease_records() -> None:
    server = shared_lock_server()
    bucket = await server.new_bucket()
    store = S3Store(server.settings(bucket, "v1/", lock=POLICY))
    before = datetime.now(UTC)
    try:
        name, data = random_object(1000)
        await store.put_object(JOB, name, data)
        await store.put_manifest(JOB, 1, signed_manifest(JOB, 1))
        await store.put_copy_record(COPY, "manifests", 1, b"a copy manifest")
        await store.put_copy_record(COPY, f"leases/{JOB}", 1, b'{"a lease":1}')
        held = await store.retention([
            store.object_key(JOB, name), store.manifest_key(JOB, 1),
            store.copy_record_key(COPY, "manifests", 1),
            store.copy_record_key(COPY, f"leases/{JOB}", 1),
        ])  # fmt: skip
    finally:
        await store.close()
    for retained in held[:3]:
        assert retained.mode == "COMPLIANCE", retained.key
        assert retained.until is not None
        assert before + timedelta(days=30) <= retained.until
        assert retained.until <= datetime.now(UTC) + timedelta(days=30, seconds=1)
        assert retained.shortfall(POLICY) is None
    lease = held[3]
    assert (lease.mode, lease.until) == (None, None)
    assert lease.shortfall(POLICY) == "no retention"


async def test_a_locked_version_cannot_be_deleted_or_shortened() -> None:
    server = shared_lock_server()
    bucket = await server.new_bucket()
    store = S3Store(server.settings(bucket, lock=LockPolicy(1, "COMPLIANCE")))
    name, data = random_object(100)
    try:
        await store.put_object(JOB, name, data)
        (held,) = await store.retention([store.object_key(JOB, name)])
    finally:
        await store.close()
    assert held.version_id
    async with server.client() as c:  # type: ignore[attr-defined]
        for attempt in (
            c.delete_object(Bucket=bucket, Key=held.key, VersionId=held.version_id),
            c.delete_object(Bucket=bucket, Key=held.key, VersionId=held.version_id,
                            BypassGovernanceRetention=True),
            c.put_object_retention(Bucket=bucket, Key=held.key, VersionId=held.version_id,
                                   Retention={"Mode": "COMPLIANCE",
                                              "RetainUntilDate": datetime.now(UTC)}),
        ):  # fmt: skip
            with pytest.raises(ClientError, match="AccessDenied"):
                await attempt


async def test_a_multipart_upload_whose_lock_headers_were_dropped_is_retained_after() -> None:
    server = shared_lock_server()
    bucket = await server.new_bucket()
    settings = server.settings(bucket, lock=POLICY, multipart_threshold=5 << 20, part_size=5 << 20)
    store = S3Store(settings)
    name, data = random_object(11 << 20)
    try:
        await store.put_object(JOB, name, data)
        (held,) = await store.retention([store.object_key(JOB, name)])
        assert await store.get_object(JOB, name) == data
    finally:
        await store.close()
    assert held.mode == "COMPLIANCE"
    assert held.shortfall(POLICY) is None


async def test_a_lock_is_refused_where_it_cannot_hold_naming_why() -> None:
    plain = shared_lock_server()
    bucket = await plain.new_bucket(lock=False)
    echoes = shared_server()  # rclone: stores lock headers as metadata, enforces nothing
    for settings, why in [
        (plain.settings(bucket, lock=POLICY), f"Object Lock is not enabled on bucket {bucket}"),
        (echoes.settings(await echoes.new_bucket(), lock=POLICY), "Object Lock is not enabled"),
    ]:
        store = S3Store(settings)
        name, data = random_object(10)
        try:
            with pytest.raises(PermanentStoreError, match=why) as caught:
                await store.put_object(JOB, name, data)
            assert "--object-lock-enabled-for-bucket" in (caught.value.hint or "")
            assert not await store.has_objects(JOB, [name])
        finally:
            await store.close()


async def test_several_agents_are_refused_a_store_without_conditional_writes() -> None:
    rclone = shared_server()
    store = S3Store(rclone.settings(await rclone.new_bucket()))
    ministack = shared_lock_server()
    good = S3Store(ministack.settings(await ministack.new_bucket(lock=False)))
    try:
        record = await store.probed()
        assert (record.if_none_match, record.if_match, record.object_lock) == (False, False, False)
        await shared_writes_needed(store, 1)  # one agent: the fallback is enough
        with pytest.raises(PermanentStoreError) as caught:
            await shared_writes_needed(store, 3)
        message = caught.value.message
        assert message.endswith(
            "the store does not honour If-None-Match (conditional writes), which 3 agents "
            "sharing it need"
        )
        assert "\n" not in message
        await shared_writes_needed(good, 3)
    finally:
        await store.close()
        await good.close()


async def test_a_feature_recorded_honoured_and_gone_stops_the_next_process() -> None:
    rclone = shared_server()
    bucket = await rclone.new_bucket()
    first = S3Store(rclone.settings(bucket, "p/"))
    await first.probed()
    await first.close()
    # What a probe through an honest gateway recorded, before a proxy that ignores the header
    # was put in front: the record says If-None-Match was honoured.
    doc = json.loads((rclone.root / bucket / "p" / RECORD).read_bytes())
    doc.update(if_none_match=True, probed="2026-01-01T00:00:00Z")
    later = S3Store(rclone.settings(bucket, "p/"))
    await later.put_plain(f"p/{RECORD}", json.dumps(doc).encode(), "forging an old record")
    try:
        with pytest.raises(PermanentStoreError, match="no longer honours If-None-Match, which it "
                           "did when probed on 2026-01-01T00:00:00Z"):  # fmt: skip
            await later.put_manifest(JOB, 1, signed_manifest(JOB, 1))
    finally:
        await later.close()
