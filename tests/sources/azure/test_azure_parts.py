"""The Azure source's parts that need no server: names to paths, credentials, retries."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from tests.sources.azure.azurite import KEY
from transferd.errors import ConfigError
from transferd.sources.azure.auth import AzureOptions, parse_url, resolve
from transferd.sources.azure.names import RESERVED, PathMapper, is_safe, mapped_path
from transferd.sources.azure.source import AzureBlobSource

CONN = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    f"AccountKey={KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)


@pytest.mark.parametrize(
    "name",
    ["", "/lead", "a//b", "a/", ".", "..", "a/../b", "a/./b", "x\x00y", "n" * 256,
     f"{RESERVED}/abc", RESERVED],
)  # fmt: skip
def test_names_the_catalog_refuses_are_mapped(name: str) -> None:
    assert not is_safe(name)
    path, mapped = PathMapper().path(name)
    assert mapped
    assert path == mapped_path(name)
    assert path.startswith(f"{RESERVED}/")


def test_a_blob_under_a_blob_is_mapped_and_the_stack_stays_small() -> None:
    mapper = PathMapper()
    listing = ["a", "a-1", "a-1/x", "a.txt", "a/b", "a/b/c", "b", "b/c"]
    paths = {name: mapper.path(name) for name in listing}
    assert paths["a"] == ("a", False)
    assert paths["a-1"] == ("a-1", False)
    assert paths["a-1/x"] == (mapped_path("a-1/x"), True)  # a-1 is a file
    assert paths["a/b"] == (mapped_path("a/b"), True)  # a is a file
    assert paths["a/b/c"] == (mapped_path("a/b/c"), True)
    assert paths["b"] == ("b", False)
    assert paths["b/c"] == (mapped_path("b/c"), True)
    assert len(mapper._files) <= 2


def test_safe_names_keep_their_path() -> None:
    mapper = PathMapper()
    for name in [
        "2026/01/dcir.csv",
        "2026/01/pmsi.csv",
        "2026/02/dcir.csv",
        "r\u00e9sum\u00e9.txt",
    ]:
        assert mapper.path(name) == (name, False)


def test_urls_and_credentials_resolve_without_showing_secrets(tmp_path: Path) -> None:
    assert parse_url("az://hdhsnds/dcir/2019/") == ("hdhsnds", "dcir", "2019/")
    assert parse_url("az://hdhsnds/dcir") == ("hdhsnds", "dcir", "")
    with pytest.raises(ConfigError, match="not an Azure container name"):
        parse_url("az://hdhsnds/Bad_Container")
    location = resolve("az://devstoreaccount1/c01/p", env={"AZURE_STORAGE_CONNECTION_STRING": CONN})
    assert location.endpoint == "http://127.0.0.1:10000/devstoreaccount1"
    assert location.credential == {"account_name": "devstoreaccount1", "account_key": KEY}
    assert KEY not in repr(location)
    assert KEY not in location.description
    sas = resolve("az://acct01/c01", env={"AZURE_STORAGE_SAS_TOKEN": "?sv=2024&sig=abc"})
    assert sas.credential == "sv=2024&sig=abc"
    assert sas.endpoint == "https://acct01.blob.core.windows.net"
    with pytest.raises(ConfigError, match="is for account devstoreaccount1, not other01"):
        resolve("az://other01/c01", env={"AZURE_STORAGE_CONNECTION_STRING": CONN})
    exposed = tmp_path / "cred"
    exposed.write_text(CONN)
    exposed.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by group or others"):
        resolve("az://devstoreaccount1/c01", AzureOptions(credential_file=exposed), env={})


async def test_throttling_and_dropped_connections_are_retried_with_backoff() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    source = AzureBlobSource(
        "az://devstoreaccount1/c01",
        AzureOptions(attempts=4),
        sleep=sleep,
    )
    failures: list[Exception] = []
    for status in (503, 429):
        busy = HttpResponseError(message="ServerBusy")
        busy.status_code = status
        failures.append(busy)
    failures.append(ServiceRequestError("connection reset"))
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop(0)
        return "data"

    assert await source.retrying("read x", call) == "data"
    assert calls == 4
    assert len(waits) == 3

    refused = HttpResponseError(message="AuthorizationFailure")
    refused.status_code = 403

    async def denied() -> str:
        raise refused

    with pytest.raises(HttpResponseError):
        await source.retrying("read x", denied)
    assert len(waits) == 3  # a refusal is not retried
