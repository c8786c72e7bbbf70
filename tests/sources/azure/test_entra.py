"""Entra ID sign-in of the Azure Blob source, each kind, against Azurite over HTTPS with OAuth.

The tokens come from azure-identity talking to the test's token endpoint (tokenserver.py) the way
it talks to Entra ID: the real library, the real requests, the real TLS (a test CA, given as
``ca_file``). Azurite then takes or refuses each token as Azure Storage does (audience, issuer,
validity). Each test lists a container and reads it whole through the source: small blobs in one
request, a large one in ranges under If-Match, and a directory placeholder that must come out as a
directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.sources.azure.azcli import az_environment, az_login
from tests.sources.azure.azurite import ACCOUNT, Azurite
from tests.sources.azure.certs import Certs
from tests.sources.azure.entradata import BLOBS, CONTAINER
from tests.sources.azure.tokenserver import (
    CLIENT_ID,
    MI_HEADER,
    SECRET,
    TENANT,
    TokenServer,
)
from transferd.errors import ConfigError, SourceError
from transferd.sources.azure.auth import AzureOptions
from transferd.sources.azure.identity import SignIn
from transferd.sources.azure.source import AzureBlobSource
from transferd.sources.base import InlineItem, MetaItem


def secret_file(tmp_path: Path, secret: str = SECRET, mode: int = 0o600) -> Path:
    path = tmp_path / "sp.secret"
    path.write_text(secret + "\n")
    path.chmod(mode)
    return path


def source(azurite: Azurite, certs: Certs, **sign_in: Any) -> AzureBlobSource:
    options = AzureOptions(
        endpoint=azurite.endpoint, ca_file=certs.ca, range_size=64 * 1024, attempts=1,
        sign_in=SignIn(**sign_in).check(),
    )  # fmt: skip
    return AzureBlobSource(f"az://{ACCOUNT}/{CONTAINER}", options)


async def read_all(src: AzureBlobSource) -> dict[str, bytes | None]:
    """Every item's path and bytes (None for a directory), read as the pipeline reads them."""
    got: dict[str, bytes | None] = {}
    try:
        async for item in src.items():
            if isinstance(item, MetaItem):
                assert item.entry.kind == "dir"
                got[item.entry.path.decode()] = None
                continue
            assert not isinstance(item, InlineItem) or item.data is not None
            data = b"".join([bytes(b) async for b in item.blocks()])  # type: ignore[union-attr]
            await item.finish(len(data), "")  # type: ignore[union-attr]
            got[item.entry.path.decode()] = data
    finally:
        await src.close()
    return got


EXPECTED = {"a": None, **BLOBS}


async def test_a_service_principal_with_a_secret_file_reads_the_container(
    azurite_oauth: Azurite, certs: Certs, token_server: TokenServer, container: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    before = token_server.count("token secret")
    src = source(
        azurite_oauth, certs, auth="client-secret", tenant_id=TENANT, client_id=CLIENT_ID,
        client_secret_file=secret_file(tmp_path), authority=token_server.authority,
    )  # fmt: skip
    assert await read_all(src) == EXPECTED
    assert token_server.count("token secret") == before + 1  # one token for every request


async def test_a_service_principal_with_a_certificate_reads_the_container(
    azurite_oauth: Azurite, certs: Certs, token_server: TokenServer, container: str
) -> None:
    before = token_server.count("token certificate")
    src = source(
        azurite_oauth, certs, auth="certificate", tenant_id=TENANT, client_id=CLIENT_ID,
        certificate_file=certs.sp_pem, authority=token_server.authority,
    )  # fmt: skip
    assert await read_all(src) == EXPECTED
    assert token_server.count("token certificate") == before + 1


async def test_workload_identity_federation_reads_with_the_token_file(
    azurite_oauth: Azurite, certs: Certs, token_server: TokenServer, container: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    token = tmp_path / "azure-identity-token"
    token.write_text(token_server.federated_token())
    token.chmod(0o644)  # as Kubernetes projects it: not a secret file, a short-lived token
    before = token_server.count("token federated")
    src = source(
        azurite_oauth, certs, auth="workload-identity", tenant_id=TENANT, client_id=CLIENT_ID,
        token_file=token, authority=token_server.authority,
    )  # fmt: skip
    assert await read_all(src) == EXPECTED
    assert token_server.count("token federated") == before + 1


async def test_a_federated_token_of_another_subject_is_refused_by_entra_id(
    azurite_oauth: Azurite, certs: Certs, token_server: TokenServer, container: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    token = tmp_path / "token"
    token.write_text(token_server.federated_token(subject="system:serviceaccount:other:pod"))
    src = source(
        azurite_oauth, certs, auth="workload-identity", tenant_id=TENANT, client_id=CLIENT_ID,
        token_file=token, authority=token_server.authority,
    )  # fmt: skip
    with pytest.raises(SourceError, match="Entra ID refused the workload identity") as caught:
        await read_all(src)
    assert "federated credential" in (caught.value.hint or "")


async def test_the_managed_identity_of_a_vm_imds_reads_the_container(
    azurite_oauth: Azurite, certs: Certs, token_server: TokenServer, container: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # The VM's code path (IMDS), with the host azure-identity lets a pod identity set.
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", token_server.authority)
    before = token_server.count("imds")
    src = source(azurite_oauth, certs, auth="managed-identity", client_id="user-assigned-1")
    assert await read_all(src) == EXPECTED
    assert token_server.count("imds client_id=user-assigned-1") == before + 1


async def test_the_managed_identity_of_an_app_service_reads_the_container(
    azurite_oauth: Azurite, certs: Certs, token_server: TokenServer, container: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{token_server.authority}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", MI_HEADER)
    before = token_server.count("appservice")
    src = source(azurite_oauth, certs, auth="managed-identity")
    assert await read_all(src) == EXPECTED
    assert token_server.count("appservice") == before + 1


async def test_a_user_delegation_sas_is_signed_once_and_read_with(
    azurite_oauth: Azurite, certs: Certs, token_server: TokenServer, container: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    before = token_server.count("token secret")
    src = source(
        azurite_oauth, certs, auth="user-delegation-sas", sas_identity="client-secret",
        tenant_id=TENANT, client_id=CLIENT_ID, client_secret_file=secret_file(tmp_path),
        authority=token_server.authority,
    )  # fmt: skip
    await src.connect()
    delegation = src._delegation
    assert delegation is not None
    sas = (await delegation.credential()).signature
    assert "sr=c" in sas
    assert "sp=rl" in sas  # the container, read and list: nothing more
    assert "skoid=" in sas  # signed with a user delegation key (Azurite verifies the signature)
    assert await read_all(src) == EXPECTED
    assert token_server.count("token secret") == before + 1  # only for the delegation key


async def test_default_azure_credential_is_used_only_when_asked_and_says_which_it_used(
    azurite_oauth: Azurite, certs: Certs, token_server: TokenServer, container: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    token = tmp_path / "token"
    token.write_text(token_server.federated_token())
    # What AKS's workload identity webhook sets in a pod: DefaultAzureCredential reads it.
    for name, value in {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT_ID,
                        "AZURE_FEDERATED_TOKEN_FILE": str(token),
                        "AZURE_AUTHORITY_HOST": token_server.authority}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO)
    src = source(azurite_oauth, certs, auth="default", authority=token_server.authority)
    assert await read_all(src) == EXPECTED
    assert "DefaultAzureCredential acquired a token from WorkloadIdentityCredential" in caplog.text


async def test_a_wrong_secret_is_refused_by_entra_id_and_named(
    azurite_oauth: Azurite, certs: Certs, token_server: TokenServer, container: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    wrong = secret_file(tmp_path, "not-the-secret")
    src = source(
        azurite_oauth, certs, auth="client-secret", tenant_id=TENANT, client_id=CLIENT_ID,
        client_secret_file=wrong, authority=token_server.authority,
    )  # fmt: skip
    with pytest.raises(SourceError) as caught:
        await read_all(src)
    message = caught.value.message
    assert f"Entra ID refused the service principal {CLIENT_ID} of tenant {TENANT}" in message
    assert "AADSTS7000215" in message
    assert "not-the-secret" not in message + (caught.value.hint or "")
    assert str(wrong) in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("change", "value"), [("audience", "https://management.azure.com"), ("lifetime", -60)]
)
async def test_a_token_azure_storage_cannot_take_is_refused_by_azurite(
    azurite_oauth: Azurite, certs: Certs, token_server: TokenServer, container: str,
    tmp_path: Path, change: str, value: object,
) -> None:  # fmt: skip
    before = getattr(token_server, change)
    setattr(token_server, change, value)
    try:
        src = source(
            azurite_oauth, certs, auth="client-secret", tenant_id=TENANT, client_id=CLIENT_ID,
            client_secret_file=secret_file(tmp_path), authority=token_server.authority,
        )  # fmt: skip
        with pytest.raises(SourceError, match=f"Azure refused the service principal {CLIENT_ID}"):
            await read_all(src)
    finally:
        setattr(token_server, change, before)


def test_a_secret_file_others_can_read_is_refused(tmp_path: Path, certs: Certs) -> None:
    exposed = secret_file(tmp_path, mode=0o640)
    sign_in = SignIn(auth="client-secret", tenant_id=TENANT, client_id=CLIENT_ID,
                     client_secret_file=exposed).check()  # fmt: skip
    with pytest.raises(ConfigError, match="readable by group or others") as caught:
        sign_in.credential(None)
    assert f"chmod 600 {exposed}" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("sign_in", "message"),
    [
        ({"auth": "client-secret", "client_id": CLIENT_ID}, "needs tenant_id"),
        ({"auth": "certificate", "tenant_id": TENANT, "client_id": CLIENT_ID},
         "needs certificate_file"),
        ({"auth": "user-delegation-sas"}, "needs the identity that asks for its key"),
        ({"auth": "key", "tenant_id": TENANT}, "without an Entra ID sign-in"),
        ({"auth": "managed-identity", "token_file": Path("t")}, "takes no token_file"),
        ({"auth": "password"}, "unknown Azure sign-in"),
    ],
)  # fmt: skip
def test_a_sign_in_that_cannot_work_is_refused_before_anything_runs(
    sign_in: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        SignIn(**sign_in).check()


@pytest.mark.slow  # the real az: about a second per call, four calls to sign in
async def test_the_azure_cli_signed_in_account_reads_the_container(
    azurite_oauth: Azurite, certs: Certs, token_server: TokenServer, container: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    az_login(tmp_path / "az", certs, token_server, secret_file(tmp_path))
    for name, value in az_environment(tmp_path / "az", certs).items():
        monkeypatch.setenv(name, value)
    before = token_server.count("token secret scope=https://storage.azure.com/.default")
    src = source(azurite_oauth, certs, auth="azure-cli", tenant_id=TENANT)
    assert await read_all(src) == EXPECTED
    # The storage token was asked for by az itself, for the account az login signed in.
    assert token_server.count("token secret scope=https://storage.azure.com/.default") > before
