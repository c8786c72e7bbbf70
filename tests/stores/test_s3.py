"""What S3Store promises beyond the contract: its settings, its errors, its exclusive writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stores.backends import random_object, signed_manifest
from tests.stores.s3server import KEY, SECRET, free_port, shared_server
from transferd.errors import ConfigError, PermanentStoreError, TransientStoreError
from transferd.stores.open import open_store
from transferd.stores.retry import RetryingStore
from transferd.stores.s3 import S3Store
from transferd.stores.s3config import load_settings, parse_location

JOB = "dcir"


def test_a_location_names_bucket_prefix_and_only_harmless_settings() -> None:
    assert parse_location("s3://snds-copy/v1/2026/") == ("snds-copy", "v1/2026/", {})
    assert parse_location("s3://snds-copy") == ("snds-copy", "", {})
    bucket, prefix, query = parse_location("s3://b01/p?endpoint=http://127.0.0.1:9000&region=gra")
    assert (bucket, prefix, query["endpoint"], query["region"]) == (
        "b01", "p/", "http://127.0.0.1:9000", "gra"
    )  # fmt: skip
    with pytest.raises(ConfigError, match="must not carry credentials"):
        parse_location("s3://key:secret@bucket/p")
    with pytest.raises(ConfigError, match="unknown setting 'secret'"):
        parse_location("s3://bucket/p?secret=x")
    with pytest.raises(ConfigError, match="not a valid S3 bucket name"):
        parse_location("s3://B_ad/p")


def test_settings_come_from_the_file_then_the_environment(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.write_text("[ovh]\naws_access_key_id = AK\naws_secret_access_key = SK\n")
    creds.chmod(0o600)
    config = tmp_path / "s3.toml"
    config.write_text(
        '[s3]\nendpoint = "https://s3.gra.example"\nregion = "gra"\n'
        'credentials_file = "creds"\nprofile = "ovh"\nread_timeout = 30\n'
    )
    env = {"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "ENVSECRET", "HOME": "/x"}

    from_file = load_settings("s3://bucket/p", config, env)
    from_env = load_settings("s3://bucket/p?endpoint=http://127.0.0.1:1", None, env)

    assert (from_file.endpoint, from_file.region, from_file.access_key) == (
        "https://s3.gra.example", "gra", "AK"
    )  # fmt: skip
    assert (from_env.endpoint, from_env.access_key, from_env.secret_key) == (
        "http://127.0.0.1:1", "ENVKEY", "ENVSECRET"
    )  # fmt: skip
    assert "SK" not in repr(from_file)
    assert "ENVSECRET" not in repr(from_env)
    assert "SK" not in from_file.description
    assert (from_file.read_timeout, from_env.read_timeout) == (30.0, 120.0)
    config.write_text('[s3]\ncredentials_file = "creds"\nprofile = "ovh"\nread_timeout = 0\n')
    with pytest.raises(ConfigError, match="read_timeout in \\[s3\\] must be a number"):
        load_settings("s3://bucket/p", config, env)


def test_credentials_that_others_can_read_or_that_are_missing_are_refused(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.write_text("[default]\naws_access_key_id = AK\naws_secret_access_key = SK\n")
    creds.chmod(0o644)
    config = tmp_path / "s3.toml"
    config.write_text('[s3]\ncredentials_file = "creds"\n')
    with pytest.raises(ConfigError, match="readable by group or others"):
        load_settings("s3://bucket/p", config, {})
    with pytest.raises(ConfigError, match="no S3 credentials found"):
        load_settings("s3://bucket/p", None, {"HOME": str(tmp_path)})


async def test_an_unreachable_endpoint_is_transient_and_says_so() -> None:
    settings = shared_server().settings("bucket", endpoint=f"http://127.0.0.1:{free_port()}")
    store = RetryingStore(S3Store(settings), attempts=2, base_delay=0.01)
    name, data = random_object(10)
    try:
        with pytest.raises(TransientStoreError, match="cannot reach the S3 endpoint") as caught:
            await store.put_object(JOB, name, data)
    finally:
        await store.close()
    assert "failed 2 times" in caught.value.message
    assert "resumes where it stopped" in (caught.value.hint or "")


async def test_wrong_credentials_are_permanent_and_named() -> None:
    server = shared_server()
    store = S3Store(server.settings(await server.new_bucket(), secret_key="not-the-secret"))  # noqa: S106
    name, data = random_object(10)
    try:
        with pytest.raises(PermanentStoreError, match="the S3 endpoint refused the credentials"):
            await store.put_object(JOB, name, data)
        with pytest.raises(PermanentStoreError, match="refused the credentials"):
            await store.list_manifests(JOB)
    finally:
        await store.close()


async def test_a_missing_bucket_is_named_with_its_endpoint() -> None:
    server = shared_server()
    store = S3Store(server.settings("no-such-bucket"))
    name, data = random_object(10)
    try:
        with pytest.raises(PermanentStoreError, match="the bucket no-such-bucket does not exist"):
            await store.put_object(JOB, name, data)
        with pytest.raises(PermanentStoreError, match=r"does not exist at http://127\.0\.0\.1"):
            await store.list_manifests(JOB)
    finally:
        await store.close()


async def test_without_if_none_match_manifests_stay_exclusive_by_head_put_and_read_back() -> None:
    """rclone ignores If-None-Match: the probe finds it out, and the fallback still refuses."""
    server = shared_server()
    store = S3Store(server.settings(await server.new_bucket()))
    try:
        assert await store.conditional_writes() is False
        await store.put_manifest(JOB, 1, signed_manifest(JOB, 1))
        with pytest.raises(PermanentStoreError, match="already exists"):
            await store.put_manifest(
                JOB, 1, signed_manifest(JOB, 1, created="2026-11-23T00:00:00Z")
            )
        assert await store.get_manifest(JOB, 1) == signed_manifest(JOB, 1)
    finally:
        await store.close()


async def test_open_store_reads_the_settings_file_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = shared_server()
    bucket = await server.new_bucket()
    monkeypatch.setenv("TRANSFERD_S3_CONFIG", str(server.config_file(tmp_path)))
    store = open_store(f"s3://{bucket}/copy")
    name, data = random_object(1000)
    try:
        await store.put_object(JOB, name, data)
        assert await store.get_object(JOB, name, 10, 5) == data[10:15]
        assert store.description == f"s3://{bucket}/copy/ at {server.endpoint}"
        assert KEY not in store.description
        assert SECRET not in store.description
    finally:
        await store.close()
    assert (server.root / bucket / "copy/jobs" / JOB / "objects" / name[:2] / name).exists()
