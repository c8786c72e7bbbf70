"""Fixtures of the Azure Blob source tests: one Azurite per test module; for Entra ID, a test CA,
a token endpoint and an Azurite over HTTPS with OAuth."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.storage.blob import BlobServiceClient

from tests.sources.azure.azurite import ACCOUNT, KEY, Azurite, running_azurite
from tests.sources.azure.certs import Certs, make_certs
from tests.sources.azure.entradata import BLOBS, CONTAINER
from tests.sources.azure.tokenserver import TokenServer, running_token_server
from tests.stores.backends import pytest_pyfunc_call as pytest_pyfunc_call


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with running_azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def token_server(certs: Certs) -> Iterator[TokenServer]:
    with running_token_server(certs) as server:
        yield server


@pytest.fixture(scope="module")
def azurite_oauth(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Azurite]:
    """Azurite over HTTPS, taking Entra ID bearer tokens (and still the account key)."""
    with running_azurite(tmp_path_factory.mktemp("azurite-oauth"), certs) as server:
        yield server


@pytest.fixture(scope="module")
def container(azurite_oauth: Azurite, certs: Certs) -> str:
    """The blobs, and the ADLS Gen2 directory ``a`` (a zero-length hdi_isfolder blob), uploaded
    over HTTPS with the account key (Azurite takes it beside tokens)."""
    credential = {"account_name": ACCOUNT, "account_key": KEY}
    with BlobServiceClient(
        azurite_oauth.endpoint, credential=credential, connection_verify=str(certs.ca)
    ) as service:
        client = service.create_container(CONTAINER)
        client.upload_blob("a", b"", metadata={"hdi_isfolder": "true"})
        for name, data in BLOBS.items():
            client.upload_blob(name, data)
    return CONTAINER
